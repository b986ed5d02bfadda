"""Entry point for ``python -m cmpclient`` and the ``cmpclient`` console script."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the click command line (:mod:`cmpclient.cli.main`) and return its exit status."""
    from cmpclient.cli.main import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
