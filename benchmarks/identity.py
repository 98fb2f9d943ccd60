"""Counts and reports of the benchmark models as one JSON file: proof a refactor changed nothing.

Run it before and after a change and compare the two files::

    python benchmarks/identity.py --out before.json
    ...change...
    python benchmarks/identity.py --out after.json --against before.json

Everything goes through the public API only, so the script runs unchanged across a
reorganisation of the package's modules. What it records for each model of the zoo (small
configurations, so the whole run takes a few minutes on 2 cores):

- ``jaxgreen.count`` at the jaxpr, lowered and compiled stages (``Cost.to_dict()``);
- ``jaxgreen.reconcile`` on ``cpu`` (its table and dict);
- ``jaxgreen.compare`` on ``cpu`` (its table and dict);
- ``jaxgreen.flax.summary`` forward and backward (its table);
- an ``Experiment`` with a tracked step run abstractly: the price tag's text.

Timings (keys and table cells that are seconds) differ from run to run and are dropped.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TIMING_KEY = re.compile(r"(time|seconds|_s$|elapsed|wall|compile_s|started|ended|created|"
                        r"hostname|host|pid|path|ledger|id$|per_s)", re.I)
TIMING_TEXT = re.compile(r"\d+(\.\d+)?\s*(ms|s|µs|us|min)\b")
TIMING_LINE = re.compile(r"^.*\b(count|compile|walk|lower|trace) s\b.*$", re.M)


def _scrub(value):
  if isinstance(value, dict):
    return {_path(k): _scrub(v) for k, v in value.items() if not TIMING_KEY.search(str(k))}
  if isinstance(value, (list, tuple)):
    return [_scrub(v) for v in value]
  if isinstance(value, float):
    return repr(value)
  return _path(value)


def _path(value):
  """Source paths of the bundled example read the same before and after jaxgreen 0.2 moved
  its internals (``jaxgreen/examples/`` is now ``jaxgreen/_src/examples/``)."""
  return value.replace("/jaxgreen/_src/", "/jaxgreen/") if isinstance(value, str) else value


def _text(s: str) -> str:
  return _path(TIMING_TEXT.sub("<t>", TIMING_LINE.sub("<timings>", s)))


def _models():
  import jax.numpy as jnp
  from zoo import bert, gpt2, mnist, resnet, scan_transformer, vit

  yield "mnist_mlp", mnist.make_train_step("mlp", 8), mnist.model_and_input("mlp", 8)
  yield ("resnet18", resnet.make_train_step(resnet.resnet18(), 2),
         resnet.model_and_input(resnet.resnet18(), 2))
  yield "gpt2_tiny", gpt2.make_train_step(gpt2.tiny(), 2), gpt2.model_and_input(gpt2.tiny(), 2)
  yield "bert_tiny", bert.make_train_step(bert.tiny(), 2), bert.model_and_input(bert.tiny(), 2)
  yield "vit_tiny", vit.make_train_step(vit.tiny(), 2), vit.model_and_input(vit.tiny(), 2)
  cfg = scan_transformer.config()
  yield ("scan_transformer", scan_transformer.make_train_step(cfg, 2),
         scan_transformer.model_and_input(cfg, 2))
  del jnp


def snapshot(quick: bool = False) -> dict:
  import jax

  import jaxgreen
  import jaxgreen.flax

  out: dict = {"jax": jax.__version__}
  for name, (step, args), (model, inputs) in _models():
    t0 = time.perf_counter()
    rec: dict = {}
    for stage in ("jaxpr", "lowered", "compiled"):
      rec[f"count_{stage}"] = _scrub(jaxgreen.count(step, stage=stage)(*args).to_dict())
    if not quick:
      r = jaxgreen.reconcile(step, targets=["cpu"])(*args)
      rec["reconcile"] = {"dict": _scrub(r.to_dict()), "table": _text(r.table())}
      c = jaxgreen.compare(step, ["cpu"])(*args)
      rec["compare"] = {"dict": _scrub(c.to_dict()), "table": _text(c.table())}
      if not isinstance(inputs, tuple):
        inputs = (inputs,)
      for backward in (False, True):
        s = jaxgreen.flax.summary(model, *inputs, backward=backward, xla=False)
        rec[f"summary_backward={backward}"] = _text(str(s))
    out[name] = rec
    print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
  out["price_tag"] = _price_tag()
  return out


def _price_tag() -> dict:
  """Three real steps of the MNIST MLP, tracked in an experiment: its price tag's text."""
  import jax
  import jax.numpy as jnp
  from zoo import mnist

  import jaxgreen

  step, args = mnist.make_train_step("mlp", 8)
  args = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), args)
  tracked = jaxgreen.track(jax.jit(step), examples=8)
  with tempfile.TemporaryDirectory() as d:
    exp = jaxgreen.Experiment("identity", ledger=f"{d}/l.db", sinks=(), measure_energy=False)
    with exp.trial({"lr": 1e-3}):
      for _ in range(3):
        variables, opt_state, _loss = tracked(*args)
        args = (variables, opt_state, *args[2:])
    exp.close()
    tag = exp.price_tag()
    return {"dict": _scrub(tag.to_dict()), "text": _text(str(tag))}


def _diff(a, b, path="") -> list[str]:
  if type(a) is not type(b):
    return [f"{path}: {a!r} != {b!r}"]
  if isinstance(a, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      if k not in a or k not in b:
        out.append(f"{path}/{k}: only in {'after' if k not in a else 'before'}")
      else:
        out += _diff(a[k], b[k], f"{path}/{k}")
    return out
  if isinstance(a, list):
    if len(a) != len(b):
      return [f"{path}: length {len(a)} != {len(b)}"]
    pairs = enumerate(zip(a, b, strict=True))
    return [d for i, (x, y) in pairs for d in _diff(x, y, f"{path}[{i}]")]
  return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True, help="where to write the snapshot (JSON)")
  p.add_argument("--against", help="an earlier snapshot: print every difference, exit 1 on any")
  p.add_argument("--quick", action="store_true", help="counts only")
  ns = p.parse_args()
  snap = snapshot(ns.quick)
  pathlib.Path(ns.out).write_text(json.dumps(snap, indent=1, sort_keys=True))
  if ns.against:
    before = json.loads(pathlib.Path(ns.against).read_text())
    diffs = _diff(before, snap)
    for d in diffs:
      print(d)
    n = sum(1 for k in before if k != "jax")
    print(f"{len(diffs)} differences over {n} models")
    return 1 if diffs else 0
  return 0


if __name__ == "__main__":
  sys.exit(main())
