"""The single entry point: ``memorytalker <command>`` (also ``python -m memorytalker``).

Every module in :mod:`memorytalker.commands` is one sub-command. A command module defines

* ``NAME`` (the sub-command), ``HELP`` (one line),
* ``add_arguments(parser)`` (argparse only; importing the module must stay cheap),
* ``main(args) -> int`` (does the work; heavy imports go inside).

Errors derived from :class:`memorytalker.errors.MemoryTalkerError` are printed as one clear line
(``memorytalker <command>: error: ...``) with exit code 2; anything else is a bug and shows a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from memorytalker import __version__
from memorytalker.errors import MemoryTalkerError


def _command_modules() -> list:
    import memorytalker.commands as pkg

    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"memorytalker.commands.{info.name}"))
    return sorted(mods, key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memorytalker",
        description="Speech-driven personalized 3D facial animation (MemoryTalker).",
    )
    parser.add_argument("--version", action="version", version=f"memorytalker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main, _name=mod.NAME)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args``, except that a command's ``key=value`` overrides may also come after its options
    (``train --config c.yaml a=1 --stage animating b=2``: overrides ``a=1 b=2``, in that order); any other
    unrecognised argument is an error, as with ``parse_args``."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 1
    try:
        return int(args._main(args) or 0)
    except MemoryTalkerError as exc:
        print(f"memorytalker {args._name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"memorytalker {args._name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
