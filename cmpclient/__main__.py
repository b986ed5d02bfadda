"""Entry point for ``python -m cmpclient`` and the ``cmpclient`` console script."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    The click-based CLI lives in :mod:`cmpclient.cli`; until it grows subcommands this
    entry point answers ``--version`` (and ``-v --version`` with dependency versions).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    from cmpclient import __version__

    if "--version" in args:
        print(f"cmpclient {__version__}")
        if "-v" in args or "--verbose" in args:
            from importlib.metadata import PackageNotFoundError, version

            for dep in ("cryptography", "pyasn1", "pyasn1-modules", "requests", "click", "rich"):
                try:
                    print(f"  {dep} {version(dep)}")
                except PackageNotFoundError:
                    print(f"  {dep} (not installed)")
            import ssl

            print(f"  {ssl.OPENSSL_VERSION}")
        return 0
    print("usage: cmpclient --version [-v]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
