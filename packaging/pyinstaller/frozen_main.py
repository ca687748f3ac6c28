"""Start-up shared by the two executables of the frozen (PyInstaller) build.

Not imported by the app itself: the spec freezes ``launch_gui.py`` and ``launch_cli.py``, which
call :func:`run`. Besides dispatching to the real entry point it makes the bundle's executables
accept ``-m MODULE ARGS``, because :func:`medseg_gui.training.jobs.python_job` starts long jobs
as ``[sys.executable, "-m", module, ...]`` and in a frozen app ``sys.executable`` is the
executable, not a Python interpreter.
"""

from __future__ import annotations

import multiprocessing
import runpy
import sys
from collections.abc import Callable


def _run_module(argv: list[str]) -> int:
    if len(argv) < 3:
        print(f"{argv[0]}: -m needs a module name", file=sys.stderr)
        return 2
    module = argv[2]
    sys.argv = [module, *argv[3:]]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def run(kind: str) -> None:
    """Run the GUI (``kind="gui"``) or the ``medseg`` CLI (``kind="cli"``) and exit."""
    # A no-op unless this process is a multiprocessing child of the frozen app.
    multiprocessing.freeze_support()
    if len(sys.argv) > 1 and sys.argv[1] == "-m":
        sys.exit(_run_module(sys.argv))
    main: Callable[[], int]
    if kind == "gui":
        from medseg_gui.ui.app import main
    else:
        from medseg_gui.cli import main
    sys.exit(main())
