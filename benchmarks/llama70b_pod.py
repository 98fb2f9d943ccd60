"""A Llama-70B-shaped train step on a TPU v5p pod, FSDP x tensor parallel, compiled deviceless.

The model of ``benchmarks/llama70b.py`` (80 layers, d_model 8192, GQA 64/8 heads, SwiGLU
28672, vocab 128256, bf16, adamw), given only as ``jax.ShapeDtypeStruct``s sharded over a
``(fsdp, tp)`` mesh of a ``tpu:v5p`` slice:

* weights (``--strategy fsdp_tp``): the model dimension over ``fsdp`` and the head / FFN
  dimension over ``tp`` (Megatron: column-split in, row-split out), the layer axis of
  the scan unsharded; ``dp_tp`` splits them over ``tp`` only;
* adamw's moments sharded like the weights; the batch over ``fsdp``;
* ``--activations constrained`` (default) pins the normalised activations to
  batch-over-fsdp, as FSDP training code does; ``free`` leaves it to XLA.
* ``--by-module``: the forward pass runs with a ``jax.named_scope`` per part of the
  layer (the model pushes none of its own; the FPO stay the same) and the report is
  split by those scopes, with the time of the extra walk (:mod:`jaxgreen._src.comparison.modules`).

Printed, each measured in this run: time and peak RSS of the jaxpr count and of the
compile, logical vs compiled FPO (redundancy), collectives per device, XLA's memory per
device against the chip's HBM, and the roofline estimate.

Run from the repository root (needs libtpu):
  python benchmarks/llama70b_pod.py [--topology 4x4x8] [--tp 8] [--batch 16] [--seq 4096]
      [--strategy fsdp_tp|dp_tp] [--activations constrained|free] [--by-module]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAXGREEN_CACHE", "0")  # compile times are measured: no cache
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import benchmarks.llama70b as llama  # noqa: E402
from benchmarks.llama70b import LlamaConfig, make_train_step, param_shapes  # noqa: E402
from jaxgreen._src import api  # noqa: E402
from jaxgreen._src.comparison import Comparison, TargetResult, place  # noqa: E402
from jaxgreen._src.hlo import parse_module  # noqa: E402
from jaxgreen._src.hlo.traffic import module_traffic_by_scope  # noqa: E402
from jaxgreen._src.pods import compile_readable, report_compiled  # noqa: E402
from jaxgreen._src.progress import status  # noqa: E402
from jaxgreen.chips import get_chip, roofline  # noqa: E402
from jaxgreen.targets import get_target  # noqa: E402

# Parameter name -> PartitionSpec; the leading axis of "layers" entries is the scan's.
# "fsdp_tp": weights split over both axes (FSDP x Megatron tensor parallelism).
# "dp_tp": weights split over tp only, replicated over the data axis.
STRATEGIES = {
    "fsdp_tp": {
        "embed": P("tp", "fsdp"),
        "wq": P(None, "fsdp", "tp"), "wk": P(None, "fsdp", "tp"),
        "wv": P(None, "fsdp", "tp"), "wo": P(None, "tp", "fsdp"),
        "w_gate": P(None, "fsdp", "tp"), "w_up": P(None, "fsdp", "tp"),
        "w_down": P(None, "tp", "fsdp"),
        "lm_head": P("fsdp", "tp"),
    },
    "dp_tp": {
        "embed": P("tp", None),
        "wq": P(None, None, "tp"), "wk": P(None, None, "tp"), "wv": P(None, None, "tp"),
        "wo": P(None, "tp", None),
        "w_gate": P(None, None, "tp"), "w_up": P(None, None, "tp"),
        "w_down": P(None, "tp", None),
        "lm_head": P(None, "tp"),
    },
}


def _spec_of(path, specs) -> P:
  """The weight's spec for a parameter or an optimizer moment (matched by its last key)."""
  keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
  return specs.get(keys[-1], P()) if keys else P()  # norms and counters: replicated


def _constrain_activations() -> None:
  """Pins the normalised activations to batch-over-fsdp, as FSDP training code does.

  Without it XLA's sharding propagation may contract over the fsdp-split model dimension
  and all-reduce partial sums instead of gathering the weights, replicating the
  attention over the fsdp axis. The model calls ``_rms_norm`` before every projection,
  so constraining its result is enough.
  """
  norm = llama._rms_norm

  def constrained(x, w):
    y = norm(x, w)
    spec = P("fsdp", *([None] * (y.ndim - 1)))
    return jax.lax.with_sharding_constraint(y, spec)

  llama._rms_norm = constrained


def _scope_forward() -> None:
  """``llama.forward`` with a ``jax.named_scope`` per part of the layer: the same
  operations in the same order, so the same FPO; only the ``op_name`` metadata differs."""
  c_rope = llama._rope

  def scoped(name, fn):
    def f(*a):
      with jax.named_scope(name):
        return fn(*a)
    return f

  def forward(params, tokens, c):
    B, T = tokens.shape
    with jax.named_scope("embed"):
      x = params["embed"][tokens]
    positions = jnp.arange(T)
    mask = jnp.tril(jnp.ones((T, T), bool))

    @jax.checkpoint
    def layer(x, p):
      with jax.named_scope("layer"):
        h = scoped("attn_norm", llama._rms_norm)(x, p["attn_norm"])
        with jax.named_scope("qkv"):
          q = (h @ p["wq"]).reshape(B, T, c.n_head, c.head_dim)
          k = (h @ p["wk"]).reshape(B, T, c.n_kv_head, c.head_dim)
          v = (h @ p["wv"]).reshape(B, T, c.n_kv_head, c.head_dim)
        q, k = scoped("rope", c_rope)(q, positions), scoped("rope", c_rope)(k, positions)
        with jax.named_scope("attention"):
          g = c.n_head // c.n_kv_head
          q = q.reshape(B, T, c.n_kv_head, g, c.head_dim)
          scores = (jnp.einsum("btkgh,bskh->bkgts", q, k)
                    / jnp.sqrt(c.head_dim).astype(x.dtype))
          scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
          probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(x.dtype)
          attn = jnp.einsum("bkgts,bskh->btkgh", probs, v).reshape(B, T, c.d_model)
        with jax.named_scope("wo"):
          x = x + attn @ p["wo"]
        h = scoped("ffn_norm", llama._rms_norm)(x, p["ffn_norm"])
        with jax.named_scope("mlp"):
          x = x + (jax.nn.silu(h @ p["w_gate"]) * (h @ p["w_up"])) @ p["w_down"]
      return x, None

    x, _ = jax.lax.scan(layer, x, params["layers"])
    x = scoped("final_norm", llama._rms_norm)(x, params["final_norm"])
    with jax.named_scope("lm_head"):
      return x @ params["lm_head"]

  llama.forward = forward


def _rss_gb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--topology", default="4x4x8", help="v5p slice, e.g. 2x2x1, 4x4x4, 4x4x8")
  ap.add_argument("--tp", type=int, default=8, help="tensor-parallel size (mesh axis tp)")
  ap.add_argument("--batch", type=int, default=None, help="global batch (default: fsdp size)")
  ap.add_argument("--seq", type=int, default=4096)
  ap.add_argument("--layers", type=int, default=80)
  ap.add_argument("--strategy", default="fsdp_tp", choices=tuple(STRATEGIES))
  ap.add_argument("--activations", default="constrained", choices=("constrained", "free"),
                  help="pin normalised activations to batch-over-fsdp (default) or leave "
                       "the shardings to XLA's propagation")
  ap.add_argument("--dump", default=None, help="write the compiled HLO text to this file")
  ap.add_argument("--by-module", action="store_true",
                  help="name the parts of the layer and split the report by them")
  args = ap.parse_args(argv)

  if args.activations == "constrained":
    _constrain_activations()
  if args.by_module:
    _scope_forward()
  c = LlamaConfig(n_layer=args.layers)
  tx, step = make_train_step(c)
  t = get_target(f"tpu:v5p:{args.topology}")
  n = t.num_devices
  if n % args.tp:
    raise SystemExit(f"--tp {args.tp} does not divide the {n} devices of {t.spec}")
  fsdp = n // args.tp
  mesh = t.mesh((fsdp, args.tp), ("fsdp", "tp"))
  batch = args.batch or fsdp
  params = param_shapes(c)
  opt_state = jax.eval_shape(tx.init, params)
  tokens = jax.ShapeDtypeStruct((batch, args.seq + 1), jnp.int32)
  weights = STRATEGIES[args.strategy]
  specs = (jax.tree_util.tree_map_with_path(lambda p, _: _spec_of(p, weights), params),
           jax.tree_util.tree_map_with_path(lambda p, _: _spec_of(p, weights), opt_state),
           P("fsdp"))
  placed = place((params, opt_state, tokens), specs, mesh)
  print(f"Llama-70B-shaped train step ({c.n_layer} layers), global batch {batch} x "
        f"{args.seq} tokens, on {t.spec}: {n} chips, mesh fsdp={fsdp} x tp={args.tp}, "
        f"weights {args.strategy}, activations {args.activations}")
  print(f"peak RSS before: {_rss_gb():.2f} GB")

  t0 = time.perf_counter()
  with jax.set_mesh(mesh):  # bare PartitionSpecs in the program resolve on this mesh
    logical = api.count(step)(*placed)
  t1 = time.perf_counter()
  rss_count = _rss_gb()
  print(f"jaxpr count: {t1 - t0:.1f} s, peak RSS {rss_count:.2f} GB, global FPO "
        f"{logical.fpo:,} ({logical.fpo / 1e15:.3f} PFPO), exact={logical.exact}")

  with jax.set_mesh(mesh), status(f"{t.spec} (lower + compile)"):
    compiled, text, notes = compile_readable(t, step, *placed)
  t2 = time.perf_counter()
  rss_compile = _rss_gb()
  print(f"lower + compile: {t2 - t1:.1f} s, peak RSS {rss_compile:.2f} GB"
        + (f" ({notes[0]})" if notes else ""))

  if args.dump:
    with open(args.dump, "w") as f:
      f.write(text)
  pod = report_compiled(compiled, t.spec, logical, compile_s=t2 - t1, count_s=t1 - t0,
                        text=text, notes=notes)
  t3 = time.perf_counter()
  print(f"walk of the compiled HLO (FPO, collectives, traffic): {t3 - t2:.1f} s")
  chip = get_chip(t)
  roof = roofline(chip, flops=pod.per_device.fpo, hbm_bytes=pod.hbm_bytes,
                  collective_bytes=pod.sent_bytes, dtype=pod.dtype)
  if args.by_module:
    t4 = time.perf_counter()
    pod = dataclasses.replace(pod, by_scope=module_traffic_by_scope(parse_module(text)))
    print(f"by-module walk (parse + traffic per scope): {time.perf_counter() - t4:.1f} s")
  res = TargetResult(t.spec, {"fsdp": fsdp, "tp": args.tp}, pod, roof)
  cmp = Comparison((res,), "llama70b", by_module=args.by_module)
  print()
  print(cmp.table())
  print()
  if args.by_module:
    print(cmp.modules().table())
    print()
  peak = pod.memory.peak_bytes
  if peak is not None and chip.hbm_bytes:
    print(f"XLA peak memory per device {peak / 2**30:.2f} GiB of {chip.hbm_bytes / 2**30:.0f} "
          f"GiB HBM ({100 * peak / chip.hbm_bytes:.0f}%)")
  print(f"redundancy {pod.redundancy:.4f}: compiled FPO x {n} devices / jaxpr FPO")
  # 6·N·tokens rule of thumb for a train step (+ the remat recompute's 2·N·tokens).
  n_params = sum(x.size for x in jax.tree.leaves(params))
  print(f"compiled FPO x devices / (8 x params x tokens) = "
        f"{pod.compiled_global_fpo / (8 * n_params * batch * args.seq):.3f}")


if __name__ == "__main__":
  main()
