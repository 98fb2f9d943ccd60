"""``jaxgreen check BASELINE.json MODULE:FUNCTION --arg f32[8,128] ...``: FPO vs a baseline.

Exit status 0 when the count matches the baseline, 1 when it changed (the diff is
printed, as Markdown with ``--markdown`` for a pull-request comment), 2 on bad input.
The baseline file is the one the pytest plugin writes (``--entry`` names the test) or
one that ``--update`` records.
"""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser(
      "check", help="compare a function's FPO with a recorded baseline (exit 1 if changed)",
      description="Counts MODULE:FUNCTION with abstract arguments and compares its FPO, by "
                  "scope and by primitive, with an entry of BASELINE (a file written by "
                  "the pytest plugin's fpo_snapshot or by --update). Exit status: 0 "
                  "unchanged, 1 changed, 2 bad input.")
  p.add_argument("baseline", metavar="BASELINE.json", help="the baseline file")
  p.add_argument("function", metavar="MODULE:FUNCTION",
                 help="e.g. mypkg.model:train_step or ./model.py:loss")
  p.add_argument("--arg", action="append", default=[], metavar="SPEC",
                 help="one positional argument as DTYPE[DIMS], e.g. f32[8,128]; repeat")
  p.add_argument("--entry", metavar="NAME",
                 help="the entry to compare with (default: the file's only entry, or "
                      "MODULE:FUNCTION)")
  p.add_argument("--rtol", type=float, default=0.0,
                 help="relative tolerance (default 0: exact)")
  p.add_argument("--totals-only", action="store_true",
                 help="pass when the totals match even if work moved between scopes")
  p.add_argument("--markdown", action="store_true", help="print the diff as Markdown")
  p.add_argument("--update", action="store_true",
                 help="record the count as the entry's baseline instead of comparing")
  p.add_argument("--debug", action="store_true", help="show tracebacks")
  p.set_defaults(func=run)


def _entry_name(args: argparse.Namespace, files) -> str:
  if args.entry:
    return args.entry
  if args.function in files.entries or args.update or len(files.entries) != 1:
    return args.function
  return next(iter(files.entries))


def run(args: argparse.Namespace) -> int:
  import os

  from jaxgreen import testing
  from jaxgreen._src.api import count
  from jaxgreen._src.cli.common import load_function, parse_shape_spec

  if not 0 <= args.rtol < 1:
    raise ValueError(f"--rtol must be in [0, 1), got {args.rtol}")
  files = (testing.load(args.baseline)
           if os.path.exists(args.baseline) or not args.update
           else testing.Baselines(args.baseline))
  name = _entry_name(args, files)
  old = files.get(name)
  if old is None and not args.update:
    have = ", ".join(sorted(files.entries)) or "none"
    raise ValueError(f"{args.baseline} has no entry {name!r} (entries: {have}); pass "
                     f"--entry NAME, or --update to record it")
  fn = load_function(args.function)
  cost = count(fn)(*[parse_shape_spec(s) for s in args.arg])
  new = testing.record(cost)
  if args.update:
    files.put(name, new)
    print(f"recorded {name}: FPO {cost.fpo:,} in {args.baseline}")
    return 0
  assert old is not None
  diff = testing.Diff(old, new, rtol=args.rtol, by_scope=not args.totals_only)
  print(diff.markdown() if args.markdown else diff.text())
  return 1 if diff.failed else 0
