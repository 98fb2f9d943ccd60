"""``compare(..., by_module=True)``: a sharded program module by module.

The model is a small transformer (2 layers, d_model 64) sharded data x model on
``tpu:v5e:2x2`` (4 devices, mesh data=2 x model=2): the Dense kernels Megatron-style
over ``model`` (column-split in, row-split out), the batch over ``data``. Its ``pos``
module is left replicated on purpose: it transforms a positional table that no batch
dimension flows through and that nothing shards, so every device computes all of it.
"""

from __future__ import annotations

import dataclasses
import io
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest
from jax.sharding import PartitionSpec as P

import jaxgreen
from jaxgreen._src.comparison.modules import TOTAL, UNATTRIBUTED

D, FF, HEADS, SEQ, BATCH, VOCAB, LAYERS = 64, 256, 4, 32, 8, 128, 2
TPU = "tpu:v5e:2x2"
AXES = {"data": -1, "model": 2}


class Block(nn.Module):
  @nn.compact
  def __call__(self, x):
    hd = D // HEADS
    qkv = nn.Dense(3 * D, use_bias=False, name="qkv")(x)
    q, k, v = jnp.split(qkv.reshape(*x.shape[:2], 3 * HEADS, hd), 3, axis=2)
    probs = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / hd ** 0.5, -1)
    attn = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(x.shape)
    x = x + nn.Dense(D, use_bias=False, name="out")(attn)
    h = jax.nn.relu(nn.Dense(FF, use_bias=False, name="up")(x))
    return x + nn.Dense(D, use_bias=False, name="down")(h)


class Pos(nn.Module):
  """A learned positional bias, f(table): no batch dimension, nothing sharded."""

  @nn.compact
  def __call__(self):
    table = self.param("table", nn.initializers.normal(), (SEQ, D))
    return nn.Dense(D, use_bias=False, name="proj")(jnp.tanh(table))


class Model(nn.Module):
  @nn.compact
  def __call__(self, tokens):
    x = nn.Embed(VOCAB, D, name="embed")(tokens) + Pos(name="pos")()
    for i in range(LAYERS):
      x = Block(name=f"block_{i}")(x)
    return nn.Dense(VOCAB, use_bias=False, name="head")(x)


def _spec(path) -> P:
  keys = [getattr(k, "key", str(k)) for k in path]
  if keys[-1] != "kernel" or len(keys) < 2 or keys[-2] == "proj":
    return P()  # the embedding, the positional table and pos/proj: replicated
  return P("model", None) if keys[-2] in ("out", "down") else P(None, "model")


MODEL = Model()
TOKENS = jax.ShapeDtypeStruct((BATCH, SEQ), jnp.int32)
PARAMS = jax.eval_shape(lambda t: MODEL.init(jax.random.key(0), t)["params"], TOKENS)
PSPECS = jax.tree_util.tree_map_with_path(lambda p, _: _spec(p), PARAMS)


def forward(params, tokens):
  return MODEL.apply({"params": params}, tokens)


TX = optax.adam(1e-3)


def train_step(params, opt_state, tokens):
  def loss(p):
    logits = MODEL.apply({"params": p}, tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

  value, grads = jax.value_and_grad(loss)(params)
  updates, opt_state = TX.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, value


@pytest.fixture(scope="module", autouse=True)
def _needs_libtpu():
  """Every test here compiles for a TPU target (before the module's shared fixtures)."""
  pytest.importorskip("libtpu", reason="TPU targets need the tpu extra")


@pytest.fixture(scope="module")
def fwd():
  return jaxgreen.compare(forward, [TPU], mesh_axes=AXES, in_specs=(PSPECS, P("data")),
                          by_module=True, progress=False)(PARAMS, TOKENS)


def test_replicated_module_shows_device_count(fwd):
  rep = fwd.modules()
  # pos/proj: SEQ x D x D MUL and SEQ x D x (D - 1) ADD in the jaxpr, all of it on each of
  # the 4 devices: redundancy 4.
  proj = rep.row(TPU, "Model/pos/proj")
  assert proj.global_fpo == SEQ * D * D + SEQ * D * (D - 1)
  assert proj.redundancy == pytest.approx(4, rel=0.05)
  # Megatron-sharded Dense layers: each device does a quarter of the work.
  for i in range(LAYERS):
    for name in ("qkv", "out", "up", "down"):
      r = rep.row(TPU, f"Model/block_{i}/{name}")
      assert r.redundancy == pytest.approx(1, abs=0.05), (r.module, r.redundancy)
      assert r.global_fpo > 0
  head = rep.row(TPU, "Model/head")
  assert head.redundancy == pytest.approx(1, abs=0.05)


def test_collectives_land_on_modules_that_need_them(fwd):
  rep = fwd.modules()
  # Row-split kernels produce partial sums over "model": an all-reduce in that module.
  for i in range(LAYERS):
    for name in ("out", "down"):
      r = rep.row(TPU, f"Model/block_{i}/{name}")
      assert "all-reduce" in r.collectives, (r.module, dict(r.collectives))
  # The replicated module needs nothing from the other devices.
  assert not rep.row(TPU, "Model/pos/proj").collectives
  assert not rep.row(TPU, "Model/pos").collectives


def _check_totals(cmp, target):
  """The total row is compare's totals; the module rows add up to them."""
  res = cmp[target]
  rows = cmp.modules().rows[res.target]
  total = rows[-1]
  assert total.module == TOTAL
  assert total.global_fpo == res.global_fpo
  assert total.per_device_fpo == res.pod.per_device.fpo
  assert total.redundancy == res.pod.redundancy
  assert total.hbm_bytes == res.pod.hbm_bytes
  assert total.sent_bytes == res.pod.sent_bytes
  assert dict(total.collectives) == dict(res.pod.collectives)
  assert total.time_s == (res.roofline.step_s if res.roofline else None)
  body = rows[:-1]
  assert sum(r.global_fpo for r in body) == res.global_fpo  # integers: exact
  assert sum(r.per_device_fpo for r in body) == res.pod.per_device.fpo
  assert sum(r.hbm_bytes for r in body) == pytest.approx(res.pod.hbm_bytes, rel=1e-12)
  assert sum(r.sent_bytes for r in body) == pytest.approx(res.pod.sent_bytes, rel=1e-12)
  for kind, c in res.pod.collectives.items():
    assert sum(r.collectives[kind].count for r in body if kind in r.collectives) == c.count
  if total.time_s is not None:
    assert sum(r.time_s or 0 for r in body) == pytest.approx(total.time_s, rel=1e-9)


def test_total_row_is_compare_totals(fwd):
  _check_totals(fwd, TPU)
  plain = jaxgreen.compare(forward, [TPU], mesh_axes=AXES, in_specs=(PSPECS, P("data")),
                           progress=False)(PARAMS, TOKENS)
  # by_module adds rows, never changes a total.
  assert plain[TPU].pod.to_dict() | {"compile_s": 0, "count_s": 0} == \
      fwd[TPU].pod.to_dict() | {"compile_s": 0, "count_s": 0}
  assert plain.rows()[:-1] == fwd.rows()[:-1]  # the last row holds timings


def test_max_depth_aggregates(fwd):
  full = fwd.modules()
  top = fwd.modules(max_depth=2)
  assert {"Model/block_0", "Model/block_1", "Model/embed", "Model/head", "Model/pos"} <= \
      set(top.modules)
  assert all(m.count("/") <= 1 for m in top.modules if m != UNATTRIBUTED)
  block = top.row(TPU, "Model/block_0")
  parts = [r for r in full.rows[TPU] if r.module == "Model/block_0"
           or r.module.startswith("Model/block_0/")]
  assert block.global_fpo == sum(r.global_fpo for r in parts)
  assert block.per_device_fpo == sum(r.per_device_fpo for r in parts)
  assert top.rows[TPU][-1] == full.rows[TPU][-1]  # the same total
  with pytest.raises(ValueError, match="max_depth"):
    fwd.modules(max_depth=0)


def test_reports_and_plot(fwd, tmp_path):
  rep = fwd.modules()
  text = rep.table()
  assert "Model/pos/proj" in text and TOTAL in text and UNATTRIBUTED in rep.notes()[0]
  assert "| Model/pos/proj |" in rep.markdown()
  d = json.loads(fwd.to_json())
  rows = d["by_module"]["targets"][TPU]
  assert rows[-1]["module"] == TOTAL and rows[-1]["global_fpo"] == fwd[TPU].global_fpo
  out = io.StringIO()
  jaxgreen._src.comparison.print_report(fwd, fmt="table", file=out)
  assert "By module" in out.getvalue()
  matplotlib = pytest.importorskip("matplotlib")
  backend = matplotlib.get_backend()
  from matplotlib.figure import Figure

  fig = rep.plot(str(tmp_path / "m.png"), metric="redundancy")
  assert isinstance(fig, Figure) and (tmp_path / "m.png").stat().st_size > 0
  assert isinstance(rep.plot(metric="time_share"), Figure)
  assert matplotlib.get_backend() == backend
  with pytest.raises(ValueError, match="metric"):
    rep.plot(metric="nope")


def test_per_device_means_print_rounded_and_tables_fit_120_columns(fwd):
  # A sum over all 4 devices: 16 local ADDs a device, then an all-reduce of one element
  # over n = 4 devices, of which each does (n-1)/n = 3/4 ADD on average: the per-device
  # FPO is a mean, and x devices an integer again.
  total = jaxgreen.compare(jnp.sum, [TPU], mesh_axes=AXES, in_specs=(P("data", "model"),),
                           by_module=True, progress=False)(
      jax.ShapeDtypeStruct((8, 8), jnp.float32))
  per_device = total[TPU].pod.per_device.fpo
  assert per_device == 15 + 0.75  # 4x4 local elements: 15 ADDs; then 3/4 of the all-reduce
  rows = dict(total.rows())
  assert rows["compiled FPO / device"][0] == "~16"  # was 15.75
  assert rows["compiled FPO x devices"][0] == "63"  # was 63.0: 4 x 15 + 3
  assert any(n.startswith("~: a per-device mean") for n in total.notes())
  assert "~: a per-device mean" in total.modules().table()
  assert not any(n.startswith("~") for n in fwd.notes())  # integers: no mark, no note
  rep = fwd.modules()
  # Two targets side by side (the rows of one, twice): 2 + 3 x 2 columns, cut into one
  # block per target, each repeating the module column.
  two = dataclasses.replace(rep, targets=(TPU, "tpu:v5e:4x4"),
                            rows={TPU: rep.rows[TPU], "tpu:v5e:4x4": rep.rows[TPU]})
  for text in (rep.table(), two.table(), fwd.table()):
    assert max(len(line) for line in text.splitlines()) <= 120
  summary = two.table().split(f"\n\n{TPU} (")[0]
  blocks = summary.split("\n\n")
  assert len(blocks) == 2 and [b.splitlines()[0].split() for b in blocks] == [[TPU] * 3,
                                                                                ["tpu:v5e:4x4"] * 3]
  for b in blocks:
    assert b.count("Model/pos/proj") == 1 and b.count(TOTAL) == 1
  assert len(two.table(width=None).splitlines()[1]) > 120  # uncut, it would not fit


def test_notebook_and_pandas_views(fwd):
  rep = fwd.modules()
  out = rep._repr_html_()
  assert ">proj<" in out and "<details" in out and f"{fwd[TPU].global_fpo:,}" in out
  assert "<details" in fwd._repr_html_()  # the module tree, folded under the table
  assert repr(fwd).startswith("Comparison(") and len(repr(fwd)) < 300
  assert repr(rep).startswith("ModuleReport(") and "\n" not in repr(rep)
  pd = pytest.importorskip("pandas", reason="to_pandas needs the [pandas] extra")
  df = rep.to_pandas()
  assert isinstance(df, pd.DataFrame)
  body = df[(df.target == TPU) & (df.module != TOTAL)]
  assert body["global_fpo"].sum() == fwd[TPU].global_fpo  # integers: exact
  one = fwd.to_pandas()
  assert list(one["target"]) == [TPU] and one["global_fpo"][0] == fwd[TPU].global_fpo
  assert one["redundancy"][0] == fwd[TPU].pod.redundancy


def test_without_by_module_says_how():
  cmp = jaxgreen.compare(lambda a: a @ a, ["cpu"], progress=False)(
      jax.ShapeDtypeStruct((8, 8), jnp.float32))
  with pytest.raises(ValueError, match="by_module=True"):
    cmp.modules()
  assert "by_module" not in cmp.to_dict()
  with pytest.raises(ValueError, match="max_depth"):
    jaxgreen.compare(lambda a: a, ["cpu"], by_module=True, max_depth=-1)


def test_train_step_two_targets_same_rows():
  opt = jax.eval_shape(TX.init, PARAMS)
  ospecs = (optax.ScaleByAdamState(P(), PSPECS, PSPECS), optax.EmptyState())
  cmp = jaxgreen.compare(train_step, [TPU, "gpu:h100x4"], mesh_axes=AXES,
                         in_specs=(PSPECS, ospecs, P("data")), by_module=True,
                         progress=False)(PARAMS, opt, jax.ShapeDtypeStruct((BATCH, SEQ + 1),
                                                                           jnp.int32))
  rep = cmp.modules()
  assert len(rep.targets) == len(cmp.results)
  names = [[r.module for r in rep.rows[t]] for t in rep.targets]
  assert all(n == names[0] for n in names)  # the same rows on every target
  for r in cmp.results:
    _check_totals(cmp, r.target)
  # The backward pass of pos/proj is replicated too; the Megatron layers stay sharded.
  assert rep.row(TPU, "Model/pos/proj").redundancy == pytest.approx(4, rel=0.1)
  assert rep.row(TPU, "Model/block_0/up").redundancy == pytest.approx(1, abs=0.1)
  # optax's update runs outside every module: it is a row, never dropped.
  assert rep.row(TPU, UNATTRIBUTED).global_fpo > 0


def test_nnx_forward():
  from flax import nnx

  from jaxgreen.flax._programs import _nnx_program

  class Mlp(nnx.Module):
    def __init__(self, rngs):
      self.up = nnx.Linear(D, FF, use_bias=False, rngs=rngs)
      self.down = nnx.Linear(FF, D, use_bias=False, rngs=rngs)

    def __call__(self, x):
      return self.down(jax.nn.relu(self.up(x)))

  model = nnx.eval_shape(lambda: Mlp(nnx.Rngs(0)))
  x = jax.ShapeDtypeStruct((BATCH, D), jnp.float32)
  # jaxgreen.flax's program pushes a name scope per nnx submodule (nnx pushes none).
  prog = _nnx_program(model, (x,), None, {})
  pspecs = jax.tree_util.tree_map_with_path(
      lambda p, _: P(None, "model") if "up" in str(p) else P("model", None), prog["params"])
  cmp = jaxgreen.compare(prog["forward"], [TPU], mesh_axes=AXES,
                         in_specs=(pspecs, P(), P("data")), by_module=True,
                         progress=False)(prog["params"], prog["rest"], x)
  rep = cmp.modules()
  up, down = rep.row(TPU, "Mlp/up"), rep.row(TPU, "Mlp/down")
  assert up.global_fpo == BATCH * D * FF + BATCH * (D - 1) * FF  # MUL + ADD of x @ W
  assert up.redundancy == pytest.approx(1, abs=0.05)
  assert "all-reduce" in down.collectives
  _check_totals(cmp, TPU)


def setup_forward():
  """The forward pass as a ``jaxgreen.Setup``, for the command line."""
  return jaxgreen.Setup(forward, (PARAMS, TOKENS), (PSPECS, P("data")), AXES, "forward")


def test_cli_by_module(capsys, tmp_path):
  from jaxgreen._src.cli import main

  where = f"{__file__}:setup_forward"
  base = ["compare", where, "--setup", "--target", TPU, "--by-module"]
  assert main([*base, "--max-depth", "2"]) == 0
  out = capsys.readouterr().out
  assert "By module" in out and "Model/pos " in out and "Model/pos/proj" not in out
  assert main([*base, "--markdown", "--plot", str(tmp_path / "p.png")]) == 0
  out = capsys.readouterr().out
  assert "| Model/pos/proj |" in out and (tmp_path / "p.png").exists()
  assert main([*base, "--json"]) == 0
  d = json.loads(capsys.readouterr().out)
  assert d["by_module"]["targets"][TPU][-1]["module"] == TOTAL


def test_traffic_by_scope_on_hlo_text():
  """Each instruction counts where its op_name puts it; a loop body without metadata
  inherits the while's scope, x trips; the scopes add up to the module's totals."""
  from jaxgreen._src.hlo import parse_module
  from jaxgreen._src.hlo.traffic import module_traffic, module_traffic_by_scope

  hlo = """HloModule m, num_partitions=4
%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(f32[] %a, f32[] %b)
}
%body (p: (s32[], f32[256])) -> (s32[], f32[256]) {
  %p = (s32[], f32[256]{0}) parameter(0)
  %i = s32[] get-tuple-element((s32[], f32[256]{0}) %p), index=0
  %x = f32[256]{0} get-tuple-element((s32[], f32[256]{0}) %p), index=1
  %one = s32[] constant(1)
  %j = s32[] add(s32[] %i, s32[] %one)
  %r = f32[256]{0} all-reduce(f32[256]{0} %x), replica_groups={}, to_apply=%add
  ROOT %t = (s32[], f32[256]{0}) tuple(s32[] %j, f32[256]{0} %r)
}
%cond (q: (s32[], f32[256])) -> pred[] {
  %q = (s32[], f32[256]{0}) parameter(0)
  %k = s32[] get-tuple-element((s32[], f32[256]{0}) %q), index=0
  %n = s32[] constant(3)
  ROOT %lt = pred[] compare(s32[] %k, s32[] %n), direction=LT
}
ENTRY %main (x: f32[256]) -> f32[256] {
  %x = f32[256]{0} parameter(0)
  %e = f32[256]{0} exponential(f32[256]{0} %x), metadata={op_name="jit(f)/Model/act/exp"}
  %zero = s32[] constant(0)
  %init = (s32[], f32[256]{0}) tuple(s32[] %zero, f32[256]{0} %e)
  %w = (s32[], f32[256]{0}) while((s32[], f32[256]{0}) %init), condition=%cond, \
body=%body, metadata={op_name="jit(f)/Model/sync/while"}
  ROOT %out = f32[256]{0} get-tuple-element((s32[], f32[256]{0}) %w), index=1
}"""
  module = parse_module(hlo)
  by = module_traffic_by_scope(module)
  flat = module_traffic(module)
  # exp reads and writes 256 f32: 2 x 1024 bytes, in Model/act.
  assert by["Model/act"].hbm_bytes == 2 * 1024 and not by["Model/act"].collectives
  ar = by["Model/sync"].collectives["all-reduce"]
  # 3 trips of one all-reduce of 1024 bytes over 4 devices: sent 2 x 3/4 x 1024 each.
  assert ar.count == 3 and ar.sent_bytes == 3 * 2 * 3 / 4 * 1024
  assert sum(t.hbm_bytes for t in by.values()) == flat.hbm_bytes
  assert sum(t.collectives["all-reduce"].sent_bytes for t in by.values()
             if "all-reduce" in t.collectives) == flat.collectives["all-reduce"].sent_bytes


def test_plot_without_matplotlib_says_how(fwd, monkeypatch):
  import sys

  monkeypatch.setitem(sys.modules, "matplotlib", None)
  monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
  with pytest.raises(ImportError, match=r"jaxgreen\[plot\]"):
    fwd.modules().plot()
