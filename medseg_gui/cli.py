"""``medseg``: the headless commands.

Every command prints one clear line and exits non-zero on bad input; tracebacks are for bugs only
(``MEDSEG_DEBUG=1`` shows them for user errors too).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from medseg_gui import __version__
from medseg_gui.core.logs import setup_logging
from medseg_gui.core.progress import Cancelled, TerminalProgress
from medseg_gui.io.errors import LoadError

EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130


def cmd_info(args: argparse.Namespace) -> int:
    from medseg_gui.io.dicom_index import choose_image_series, describe, index_folder
    from medseg_gui.io.loader import load_volume

    path = Path(args.path)
    progress = TerminalProgress()
    if path.is_dir() and not args.series:
        index = index_folder(path, progress)
        if not index.image_series():
            choose_image_series(index)  # raises the one-line reason
        if len(index.image_series()) > 1:
            # Several series: the tree is the useful answer.
            progress.clear()
            print(json.dumps(describe(index), indent=2))
            return 0
    volume = load_volume(path, series_uid=args.series, progress=progress)
    progress.clear()
    print(json.dumps(volume.summary(), indent=2))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from medseg_gui.io.imagefile import write_image
    from medseg_gui.io.loader import load_volume
    from medseg_gui.io.output import check_output

    out = check_output(args.output, force=args.force)
    progress = TerminalProgress()
    volume = load_volume(args.path, series_uid=args.series, progress=progress)
    write_image(volume, out)
    progress.clear()
    for w in volume.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {out} ({'x'.join(map(str, volume.geometry.size_ijk))} voxels)")
    return 0


def _one_line(exc: LoadError | OSError) -> str:
    """``PATH: problem`` for the error line."""
    if isinstance(exc, LoadError):
        return str(exc)
    return f"{exc.filename or '?'}: {exc.strerror or exc}".replace("\n", " ")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medseg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"medseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="print a JSON summary of a study (or a DICOM folder's series)")
    p.add_argument("path", help="DICOM folder or file, .nii.gz, .nrrd or .mha")
    p.add_argument("--series", help="SeriesInstanceUID to pick from a folder of several")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="write a study as .nii.gz, .nrrd or .mha")
    p.add_argument("path", help="DICOM folder or file, .nii.gz, .nrrd or .mha")
    p.add_argument("output", help="output file: .nii.gz, .nii, .nrrd or .mha")
    p.add_argument("--series", help="SeriesInstanceUID to pick from a folder of several")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=cmd_convert)

    # Each feature registers its own commands; their heavy imports happen inside the handlers.
    from medseg_gui.editing import prompt_commands
    from medseg_gui.inference import commands as inference_commands
    from medseg_gui.io import export_commands
    from medseg_gui.training import commands as train_commands
    from medseg_gui.training import finetune_commands, queue_commands, train_prompt_commands

    inference_commands.add_commands(sub)
    prompt_commands.add_commands(sub)
    export_commands.add_commands(sub)
    queue_commands.add_commands(sub)
    train_commands.add_commands(sub)
    finetune_commands.add_commands(sub)
    train_prompt_commands.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from medseg_gui.editing.prompt_commands import join_coordinates

    args = build_parser().parse_args(join_coordinates(sys.argv[1:] if argv is None else argv))
    log = setup_logging(verbose=bool(os.environ.get("MEDSEG_DEBUG")))
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at exit
        return code
    except BrokenPipeError:
        # The reader left (``medseg info STUDY | head``): stop quietly, and point stdout at
        # devnull so that the interpreter's flush at exit does not fail again (Python docs,
        # "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (LoadError, OSError) as exc:
        # An OSError here is the system refusing a file (a permission, a full disk, a loop of
        # links) that no reader turned into a LoadError: still the user's to fix, not a bug.
        log.error("%s failed", args.command, exc_info=exc)
        if os.environ.get("MEDSEG_DEBUG"):
            raise
        print(f"medseg: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Cancelled:
        print("medseg: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("\r" + " " * 78 + "\r")


if __name__ == "__main__":
    sys.exit(main())
