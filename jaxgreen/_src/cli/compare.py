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
from collections.abc import Callable, Sequence
from typing import IO, Any

from jaxgreen._src.cli.common import load_function, parse_shape_spec, print_result
from jaxgreen._src.progress import progress_line


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
                    help="MODULE:FUNCTION returns a jaxgreen.Setup (function, "
                         "arguments, specs, mesh axes), e.g. "
                         "examples/sharded_transformer.py:setup")
  pods.add_argument("--mesh", metavar="AXES",
                    help="mesh axes as name=size, one size may be -1 for the devices left "
                         "over, e.g. data=-1,model=2")
  pods.add_argument("--in-spec", action="append", default=[], metavar="SPEC",
                    help="PartitionSpec of one argument, e.g. 'data,None'; repeat")
  pods.add_argument("--format", choices=("table", "markdown", "json"), default="table",
                    help="report format (default: table)")
  pods.add_argument("--markdown", action="store_true",
                    help="print the report as Markdown (same as --format markdown)")
  pods.add_argument("--plot", metavar="PATH", help="save a bar plot (needs [plot]); with "
                    "--by-module, of each module's redundancy per target")
  pods.add_argument("--by-module", action="store_true",
                    help="also split each target's figures by module path (from the "
                         "compiled HLO's op_name metadata): FPO, redundancy, collectives, "
                         "HBM bytes and share of the estimated step time per module")
  pods.add_argument("--max-depth", type=int, default=None, metavar="N",
                    help="with --by-module, aggregate module paths to N segments")
  pods.add_argument("--steps", type=int, default=None, metavar="N",
                    help="also forecast a training run of N steps: hours, kWh, CO2e and "
                         "on-demand cost per target and --region (estimates)")
  pods.add_argument("--region", action="append", default=[], metavar="REGION",
                    help="with --steps, a region for CO2e (gcp:us-central1, aws:us-east-1, "
                         "azure:eastus, FR); repeat (default: gcp:us-central1)")
  p.add_argument("--debug", action="store_true", help="show tracebacks")
  p.set_defaults(func=run)


def _progress(stream):
  """A status line on a terminal: what is being compiled, how long each target took.

  Quiet when ``stream`` is not a terminal (a pipe, a CI log, a file).
  """
  return progress_line(stream)


def run(args: argparse.Namespace) -> int:
  from jaxgreen.targets import get_target

  specs = args.target or ["cpu"]
  # Bad targets fail before any work; GPU targets set jax's platform themselves (see
  # jaxgreen._src.devices.start_devices) or say how to.
  parsed = [get_target(s) for s in specs]
  if args.report or args.setup or args.mesh or args.in_spec or args.by_module or args.steps:
    report, done = _progress(sys.stderr)
    fmt = "json" if args.json else "markdown" if args.markdown else args.format
    try:
      return run_cli(args.function, targets=specs, arg_specs=args.arg, mesh=args.mesh,
                     in_specs=args.in_spec, fmt=fmt, plot=args.plot, setup=args.setup,
                     progress=report, by_module=args.by_module, max_depth=args.max_depth,
                     steps=args.steps, regions=args.region)
    finally:
      done()
  from jaxgreen._src.reconciliation import reconcile

  fn = load_function(args.function)
  arg_specs = [parse_shape_spec(s) for s in args.arg]
  report, done = _progress(sys.stderr)
  try:
    rec = reconcile(fn, targets=parsed, cond=args.cond, progress=report)(*arg_specs)
  finally:
    done()
  print_result(args, rec.to_dict(), rec.table())
  return 0


# -- the pods-and-chips report (--report) ---------------------------------------------

def parse_mesh_axes(text: str) -> dict[str, int]:
  """``"data=-1,model=2"`` -> ``{"data": -1, "model": 2}`` (for ``--mesh``)."""
  out: dict[str, int] = {}
  for part in filter(None, (p.strip() for p in text.split(","))):
    name, eq, size = part.partition("=")
    try:
      out[name.strip()] = int(size) if eq else -1
    except ValueError:
      raise ValueError(f"--mesh {text!r}: write NAME=SIZE pairs, e.g. data=-1,model=2 "
                       f"(-1: the devices left over)") from None
  if not out:
    raise ValueError(f"--mesh {text!r}: write NAME=SIZE pairs, e.g. data=-1,model=2")
  return out


def parse_partition_spec(text: str):
  """``"data,None"`` -> ``P("data", None)``; ``"(data,model),None"`` shards one dim twice;
  ``""`` or ``"replicated"`` -> ``P()`` (for ``--in-spec``, one per argument)."""
  from jax.sharding import PartitionSpec

  s = text.strip()
  if s in ("", "replicated", "P()"):
    return PartitionSpec()
  dims: list[Any] = []
  depth, cur = 0, ""
  for ch in s + ",":
    if ch == "(":
      depth += 1
    elif ch == ")":
      depth -= 1
    if ch == "," and depth == 0:
      tok = cur.strip()
      if tok.startswith("("):
        dims.append(tuple(x.strip() for x in tok.strip("()").split(",") if x.strip()))
      else:
        dims.append(None if tok in ("None", "none", "") else tok)
      cur = ""
    else:
      cur += ch
  if depth != 0:
    raise ValueError(f"--in-spec {text!r}: unbalanced parentheses; e.g. (data,model),None")
  return PartitionSpec(*dims)


def run_cli(function: str, *, targets: Sequence[str], arg_specs: Sequence[str] = (),
            mesh: str | None = None, in_specs: Sequence[str] = (), fmt: str = "table",
            plot: str | None = None, setup: bool = False,
            progress: Callable[[str, int, int], None] | None = None,
            file: IO[str] | None = None, by_module: bool = False,
            max_depth: int | None = None, steps: int | None = None,
            regions: Sequence[str] = ()) -> int:
  """The pod report for ``jaxgreen compare --report``: load, compare, print.

  Args:
    function: ``MODULE:FUNCTION``; with ``setup=True`` a function returning a
      ``jaxgreen.Setup`` (e.g. ``examples/sharded_transformer.py:setup``).
    targets: target strings.
    arg_specs: ``--arg`` shape specs (``f32[8,128]``), when not ``setup``.
    mesh: ``--mesh`` text, e.g. ``"data=-1,model=2"`` (overrides the setup's axes).
    in_specs: ``--in-spec`` texts, one per argument (override the setup's specs).
    fmt: ``"table"``, ``"markdown"`` or ``"json"``.
    plot: path of a bar plot to save.
    progress: ``progress(target, i, n)`` before each target.
    file: where to print.
    by_module: add the per-module report (and plot) to the totals.
    max_depth: aggregate module paths to this many segments.
    steps: also print the forecast of that many steps (:mod:`jaxgreen._src.account.forecast`).
    regions: the forecast's regions (default: ``gcp:us-central1``).

  Returns:
    The exit status (0).
  """
  from jaxgreen._src.comparison import Setup, compare, print_report

  obj = load_function(function)
  if setup:
    s = obj()
    if not isinstance(s, Setup):
      raise TypeError(f"{function!r} returned {type(s).__name__}; a setup function must "
                      f"return jaxgreen.Setup(fn, args, in_specs, mesh_axes)")
    fn, args, specs, axes, name = s.fn, tuple(s.args), s.in_specs, s.mesh_axes, s.name
  else:
    fn, args, specs, axes, name = obj, tuple(parse_shape_spec(a) for a in arg_specs), None, \
        None, function
  if mesh:
    axes = parse_mesh_axes(mesh)
  if in_specs:
    specs = tuple(parse_partition_spec(s) for s in in_specs)
  if max_depth is not None and not by_module:
    raise ValueError(f"--max-depth {max_depth}: only with --by-module")
  cmp = compare(fn, list(targets), mesh_axes=axes, in_specs=specs, name=name,
                progress=progress, by_module=by_module, max_depth=max_depth)(*args)
  print_report(cmp, fmt=fmt, plot=plot, file=file)
  if steps is not None:
    from jaxgreen._src.account.forecast import from_comparison

    f = from_comparison(cmp, steps, list(regions) or ["gcp:us-central1"])
    out = file or sys.stdout
    text = (f.to_json(indent=2) if fmt == "json" else f.markdown() if fmt == "markdown"
            else f.table())
    print("\n" + text, file=out)
  return 0
