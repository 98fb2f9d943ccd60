"""``jaxgreen count MODULE:FUNCTION --arg f32[8,128] ...``: FPO of a function."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser(
      "count", help="count ADD/MUL of a JAX function",
      description="Traces MODULE:FUNCTION with abstract arguments (nothing is allocated "
                  "or run) and prints its FPO: total, ADD, MUL, by primitive and by scope.")
  p.add_argument("function", metavar="MODULE:FUNCTION",
                 help="e.g. mypkg.model:train_step or ./model.py:loss")
  p.add_argument("--arg", action="append", default=[], metavar="SPEC",
                 help="one positional argument as DTYPE[DIMS], e.g. f32[8,128]; repeat")
  p.add_argument("--json", action="store_true", help="print the Cost as JSON")
  p.add_argument("--cond", default="max", choices=("max", "min", "mean"),
                 help="policy for cond/switch branches (default: max)")
  p.add_argument("--strict", action="store_true",
                 help="fail if any primitive has no cost rule")
  p.add_argument("--top", type=int, default=12, help="rows per breakdown (default 12)")
  p.add_argument("--by", default="scope", choices=("primitive", "scope", "source"),
                 help="breakdown: by primitive and scope (the default), or by the Python "
                      "source line the work is written on")
  p.add_argument("--pprof", metavar="PATH",
                 help="also write the FPO as a pprof profile (gzipped profile.proto) for "
                      "go tool pprof or speedscope")
  p.add_argument("--html", metavar="PATH",
                 help="also write a self-contained HTML report (opens offline)")
  p.add_argument("--debug", action="store_true", help="show tracebacks")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  import sys
  import warnings

  import jaxgreen
  from jaxgreen._src.cli.common import load_function, parse_shape_spec, print_result

  if args.top < 0:
    raise ValueError(f"--top must be >= 0, got {args.top}")
  fn = load_function(args.function)
  specs = [parse_shape_spec(s) for s in args.arg]
  with warnings.catch_warnings():
    # The report lists uncounted primitives itself.
    warnings.simplefilter("ignore", jaxgreen.UncountedPrimitiveWarning)
    cost = jaxgreen.count(fn, cond=args.cond, strict=args.strict)(*specs)
  text = cost.source_table(top=args.top) if args.by == "source" else cost.table(top=args.top)
  print_result(args, cost.to_dict(), text)
  for path, write in ((args.pprof, cost.to_pprof), (args.html, cost.to_html)):
    if path:
      write(path)
      print(f"wrote {path}", file=sys.stderr)
  return 0
