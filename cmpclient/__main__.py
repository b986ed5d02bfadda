"""Entry point for ``python -m cmpclient`` and the ``cmpclient`` console script.

As the process's entry it keeps Python's cyclic garbage collector out of start-up and
shut-down.  Start-up builds some 40 000 long-lived objects (click, the pyasn1 schemas,
cryptography.x509) that no collection can free, and the interpreter's collections at
exit walk all of them again: together ~40 ms of a ~240 ms ``crmf``, a sixth of it.  The
collector is paused while a command loads, those objects are then frozen out of its
view (:func:`gc.freeze`) and it runs as usual while the command works, so long-running
commands (``serve``, ``bench``, ``proxy``, ``check``) collect their garbage as ever.
"""

from __future__ import annotations

import gc
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the click command line (:mod:`cmpclient.cli.main`) and return its exit status.

    Only for a process's own entry: it freezes every object alive at the end, which a
    library caller (or a test runner calling it repeatedly) would not want; they call
    :func:`cmpclient.cli.main.main`.
    """
    gc.disable()
    try:
        from cmpclient.cli.main import main as cli_main

        return cli_main(argv, gc_paused=True)
    finally:
        gc.freeze()  # the process ends next; nothing alive now is worth a last walk


if __name__ == "__main__":
    sys.exit(main())
