#!/usr/bin/env bash
# Idempotent set-up: a virtualenv in .venv with cmpclient and its test extras, and the
# openssl CLI (the independent CMP peer) from Debian's packages when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v openssl >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
    else
        echo "setup: the openssl command is needed for the interop tests" >&2
        exit 1
    fi
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.cmpclient-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    touch "$stamp"
fi
# The editable install leaves cmpclient's own modules uncompiled, and with
# PYTHONDONTWRITEBYTECODE set Python never caches them: every command would compile ~90
# modules from source (~150 ms of each cold start).  Byte-compile them as a wheel install
# would; only changed files are recompiled.
.venv/bin/python -m compileall -q -j 0 cmpclient >/dev/null
