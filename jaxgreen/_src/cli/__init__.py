"""The ``jaxgreen`` command line: ``jaxgreen count``, ``jaxgreen compare``, ``jaxgreen ledger``.

Each subcommand lives in ``jaxgreen/_src/cli/<name>.py`` (``quiet-jax`` in ``quiet_jax.py``)
and exposes ``add(subparsers)``, which registers its parser and sets ``func`` to the
function that runs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from jaxgreen._src.jaxpr.interpreter import UncountedPrimitiveError
from jaxgreen._version import __version__

SUBCOMMANDS = ("count", "demo", "compare", "check", "ledger", "quiet_jax")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="jaxgreen",
      description="What JAX programs really cost: FPO (ADD + MUL), exactly.")
  parser.add_argument("--version", action="version", version=f"jaxgreen {__version__}")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
  for name in SUBCOMMANDS:
    try:
      module = importlib.import_module(f"jaxgreen._src.cli.{name}")
    except ModuleNotFoundError as e:
      if e.name != f"jaxgreen._src.cli.{name}":
        raise
      continue
    module.add(sub)
  return parser


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    return int(args.func(args) or 0)
  except BrokenPipeError:  # `jaxgreen ... | head`
    return 0
  except (ValueError, TypeError, FileNotFoundError, ImportError,
          UncountedPrimitiveError) as e:  # bad input: one line, the fix in the message
    if getattr(args, "debug", False):
      raise
    print(f"jaxgreen {args.command}: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
