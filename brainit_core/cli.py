"""The one command-line interface: ``python -m brainit_core <command>``.

Each command group lives next to the code it drives and exposes ``register(subparsers)``;
modules are imported only when the CLI is built so that ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from brainit_core.errors import BrainITError

# (module, attribute) pairs; each register() adds one or more sub-commands.
_COMMAND_MODULES = [
    ("brainit_core.data.nsd_cli", "register"),
    ("brainit_core.data.twin.cli", "register"),
    ("brainit_core.models.cli", "register"),
    ("brainit_core.reconstruction.cli", "register"),
    ("brainit_core.reconstruction.branches_cli", "register"),
    ("brainit_core.metrics.cli", "register"),
    ("brainit_core.demo_cli", "register"),
    ("brainit_core.benchmark.cli", "register"),
]


class OneLineErrorParser(argparse.ArgumentParser):
    """Refuses a bad command line with one line naming the argument (exit status 2), not the usage block.

    Sub-command parsers are of the same class (``add_subparsers`` uses the parent's class).
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="python -m brainit_core",
        description="Brain-IT Explorer: reconstruct seen images from fMRI with Brain-IT.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for module_name, attr in _COMMAND_MODULES:
        getattr(importlib.import_module(module_name), attr)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        result = args.func(args)
    except BrainITError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is kept on disk and the command can be resumed", file=sys.stderr)
        return 130
    return int(result or 0)
