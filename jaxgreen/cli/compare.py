"""``jaxgreen compare MODULE:FUNCTION --arg f32[8,128] --target cpu --target gpu:h100``.

Two reports of one program on several targets, compiled without the hardware:

* the default, reconciliation: the jaxpr, lowered and compiled counts beside XLA's cost
  analysis, with the named causes of every difference;
* ``--report`` (implied by ``--mesh``, ``--in-spec`` or ``--setup``), pods and chips:
  global FPO, per-device FLOPs, bytes, collectives, redundancy, roofline time and
  estimated energy, for programs sharded over each target's devices.
"""

from __future__ import annotations

import argparse
import sys


def add(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser(
      "compare", help="reconcile jaxgreen's count with XLA's on CPU/TPU/GPU targets",
      description="Compiles MODULE:FUNCTION for each --target without the hardware "
                  "(nothing runs) and prints one side-by-side table: the jaxpr, lowered "
                  "and compiled counts, XLA's cost analysis, and the named causes of "
                  "the difference (FMA convention, loop trips, ...).")
  p.add_argument("function", metavar="MODULE:FUNCTION",
                 help="e.g. mypkg.model:train_step or ./model.py:loss")
  p.add_argument("--arg", action="append", default=[], metavar="SPEC",
                 help="one positional argument as DTYPE[DIMS], e.g. f32[8,128]; repeat")
  p.add_argument("--target", action="append", default=[], metavar="TARGET",
                 help="cpu, tpu:<chip>:<topology> (tpu:v5e:2x2) or gpu:<chip>[x<n>] "
                      "(gpu:h100); repeat (default: cpu)")
  p.add_argument("--json", action="store_true", help="print the reconciliation as JSON")
  p.add_argument("--cond", default="max", choices=("max", "min", "mean"),
                 help="policy for cond/switch branches in the reconciliation (default: max)")
  pods = p.add_argument_group(
      "pods and chips report",
      "shard the program over each target's devices and compare chips (--report)")
  pods.add_argument("--report", action="store_true",
                    help="print the pods-and-chips report instead of the reconciliation")
  pods.add_argument("--setup", action="store_true",
                    help="MODULE:FUNCTION returns a jaxgreen.compare.Setup (function, "
                         "arguments, specs, mesh axes), e.g. "
                         "examples/sharded_transformer.py:setup")
  pods.add_argument("--mesh", metavar="AXES",
                    help="mesh axes as name=size, one size may be -1 for the devices left "
                         "over, e.g. data=-1,model=2")
  pods.add_argument("--in-spec", action="append", default=[], metavar="SPEC",
                    help="PartitionSpec of one argument, e.g. 'data,None'; repeat")
  pods.add_argument("--format", choices=("table", "markdown", "json"), default="table",
                    help="report format (default: table)")
  pods.add_argument("--plot", metavar="PATH", help="save a bar plot (needs [plot])")
  p.add_argument("--debug", action="store_true", help="show tracebacks")
  p.set_defaults(func=run)


def _progress(stream):
  """A status line on a terminal: what is being compiled, how long each target took.

  Quiet when ``stream`` is not a terminal (a pipe, a CI log, a file).
  """
  from jaxgreen.targets import progress_line

  return progress_line(stream)


def run(args: argparse.Namespace) -> int:
  from jaxgreen import targets as _targets

  specs = args.target or ["cpu"]
  # Bad targets fail before any work; GPU targets set jax's platform themselves (see
  # jaxgreen.targets.start_devices) or say how to.
  parsed = [_targets.get_target(s) for s in specs]
  if args.report or args.setup or args.mesh or args.in_spec:
    from jaxgreen.compare import run_cli

    report, done = _progress(sys.stderr)
    try:
      return run_cli(args.function, targets=specs, arg_specs=args.arg, mesh=args.mesh,
                     in_specs=args.in_spec, fmt="json" if args.json else args.format,
                     plot=args.plot, setup=args.setup, progress=report)
    finally:
      done()
  from jaxgreen.cli.common import load_function, parse_shape_spec, print_result
  from jaxgreen.reconcile import reconcile

  fn = load_function(args.function)
  arg_specs = [parse_shape_spec(s) for s in args.arg]
  report, done = _progress(sys.stderr)
  try:
    rec = reconcile(fn, targets=parsed, cond=args.cond, progress=report)(*arg_specs)
  finally:
    done()
  print_result(args, rec.to_dict(), rec.table())
  return 0
