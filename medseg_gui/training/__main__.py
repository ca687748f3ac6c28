"""``python -m medseg_gui.training train|finetune|train-prompt ...``: those commands alone."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from medseg_gui.core.progress import Cancelled
from medseg_gui.io.errors import LoadError
from medseg_gui.training import finetune_commands, train_prompt_commands
from medseg_gui.training.commands import add_commands


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medseg")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    finetune_commands.add_commands(sub)
    train_prompt_commands.add_commands(sub)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except LoadError as exc:
        print(f"medseg: error: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        print("medseg: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
