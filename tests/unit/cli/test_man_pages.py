"""The committed man pages match the click commands, and shell completion works.

When this fails with "man pages are stale": run ``.venv/bin/python scripts/make_man.py`` and
commit ``man/``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
MAN = REPO / "man"


def _make_man():
    spec = importlib.util.spec_from_file_location("make_man", REPO / "scripts" / "make_man.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_man = _make_man()


def test_committed_man_pages_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    status = make_man.main(["--check"])
    err = capsys.readouterr().err
    assert status == 0, "man pages are stale; run .venv/bin/python scripts/make_man.py\n" + err


def test_check_detects_a_stale_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert make_man.main(["--out", str(tmp_path)]) == 0
    assert make_man.main(["--out", str(tmp_path), "--check"]) == 0
    page = tmp_path / "cmpclient-dump.1"
    page.write_text(page.read_text().replace("Print the tree as JSON", "Print something else"))
    (tmp_path / "cmpclient-gone.1").write_text(".TH X 1\n")
    assert make_man.main(["--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "cmpclient-dump.1: stale" in err
    assert "cmpclient-gone.1: no such command any more" in err


def test_a_page_for_every_command() -> None:
    from cmpclient.cli.main import COMMANDS

    for name in COMMANDS:
        assert (MAN / f"cmpclient-{name}.1").is_file(), name
    main_page = (MAN / "cmpclient.1").read_text()
    for name in COMMANDS:
        assert f"\\fB{name}\\fR" in main_page or f"\\fB{name.replace('-', chr(92) + '-')}\\fR" in main_page


def test_sections_of_a_subcommand_page() -> None:
    page = (MAN / "cmpclient-dump.1").read_text()
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "EXIT STATUS", "SEE ALSO"):
        assert f".SH {section}\n" in page
    assert "\\-\\-json" in page
    from cmpclient.errors import ExitCode

    for code in ExitCode:
        assert f"\\fB{int(code)}\\fR ({code.name})" in page


def test_main_page_documents_completion_and_environment() -> None:
    page = (MAN / "cmpclient.1").read_text()
    assert "_CMPCLIENT_COMPLETE=bash_source cmpclient" in page
    assert ".SH ENVIRONMENT" in page and "NO_COLOR" in page and "CMPCLIENT_CONFIG" in page


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_pages_are_valid_roff() -> None:
    for page in sorted(MAN.glob("*.1")):
        result = subprocess.run(["groff", "-man", "-Tutf8", "-z", "-ww", str(page)], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0 and result.stderr == "", f"{page.name}: {result.stderr}"


@pytest.mark.parametrize(
    "shell, marker",
    [("bash", "complete -o nosort -F _cmpclient_completion cmpclient"), ("zsh", "compdef _cmpclient_completion cmpclient"),
     ("fish", "complete --no-files --command cmpclient")],
)
def test_shell_completion_script(shell: str, marker: str) -> None:
    env = {**os.environ, "_CMPCLIENT_COMPLETE": f"{shell}_source"}
    result = subprocess.run([sys.executable, "-m", "cmpclient"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    assert f"_CMPCLIENT_COMPLETE={shell}_complete" in result.stdout


def test_completion_offers_subcommands_and_options() -> None:
    env = {**os.environ, "_CMPCLIENT_COMPLETE": "bash_complete", "COMP_WORDS": "cmpclient du", "COMP_CWORD": "1"}
    result = subprocess.run([sys.executable, "-m", "cmpclient"], env=env, capture_output=True, text=True, timeout=60)
    assert "plain,dump" in result.stdout.splitlines()
    env.update(COMP_WORDS="cmpclient dump --j", COMP_CWORD="2")
    result = subprocess.run([sys.executable, "-m", "cmpclient"], env=env, capture_output=True, text=True, timeout=60)
    assert "plain,--json" in result.stdout.splitlines()
