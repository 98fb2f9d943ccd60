"""Reconciliation with XLA: best-effort cost_analysis, named causes, zero residual."""

import importlib

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen
from jaxgreen._src.reconciliation import CAUSE_ORDER, LOOPS, RESIDUAL, Reconciliation, reconcile
from jaxgreen._src.xla_analysis import XlaCost, normalize_cost_analysis, xla_cost

F32 = jnp.float32
W = jax.ShapeDtypeStruct((64, 64), F32)


def scan_matmul(w, x):
  """10 steps of a 64x64 matmul."""
  return lax.scan(lambda c, _: (c @ w, None), x, None, length=10)[0]


@pytest.mark.parametrize("ca, expected", [
    (None, None),
    ([], None),
    ({}, None),
    ([{"flops": 3, "transcendentals": 1}], {"flops": 3.0, "transcendentals": 1.0}),
    ({"flops": "n/a", "bytes accessed": 8}, {"bytes accessed": 8.0}),
    ("flops", None),
])
def test_normalize_cost_analysis(ca, expected):
  assert normalize_cost_analysis(ca) == expected


class _Fake:
  def __init__(self, ca):
    self.ca = ca

  def cost_analysis(self):
    if isinstance(self.ca, Exception):
      raise self.ca
    return self.ca

  def runtime_executable(self):
    raise RuntimeError("no executable")


@pytest.mark.parametrize("ca, flops, seconds, source", [
    (None, None, None, "unavailable"),
    (RuntimeError("unimplemented"), None, None, "unavailable"),
    ([{"flops": 10.0, "optimal_seconds": 1e-6}], 10.0, 1e-6, "cost_analysis"),
    ({"flops": -1.0, "optimal_seconds": -1.0}, -1.0, None, "cost_analysis"),
])
def test_xla_cost_is_best_effort(ca, flops, seconds, source):
  x = xla_cost(_Fake(ca))
  assert (x.flops, x.optimal_seconds, x.source) == (flops, seconds, source)
  assert x.available == (flops is not None)


def _check_sum(rep):
  total = sum(v for v in rep.causes.values() if v is not None)
  assert total == rep.jaxpr.fpo - rep.xla.flops * rep.devices


def _targets():
  out = ["cpu"]
  try:
    import libtpu  # noqa: F401

    out.append("tpu:v5e:2x2")
  except ImportError:
    pass
  from jaxgreen._src.devices import gpu_plugin_problem

  if gpu_plugin_problem() is None:
    out.append("gpu:h100")
  return out


def test_scan_same_count_at_every_stage_and_loop_trips_named():
  specs = _targets()
  rec = reconcile(scan_matmul, targets=specs)(W, W)
  assert isinstance(rec, Reconciliation) and len(rec) == len(specs)
  for rep in rec:
    assert rep.jaxpr.muls == 10 * 64**3  # trips·M·N·K
    assert rep.jaxpr.adds == 10 * 64 * 64 * 63  # trips·M·N·(K-1)
    assert (rep.compiled.adds, rep.compiled.muls) == (rep.jaxpr.adds, rep.jaxpr.muls)
    if rep.lowered is not None:
      assert (rep.lowered.adds, rep.lowered.muls) == (rep.jaxpr.adds, rep.jaxpr.muls)
    assert rep.xla.flops < rep.jaxpr.fpo / 9  # XLA counts the body once
    # 9 more body trips (dot at 2·M·N·K + the counter add) and 10 more condition checks
    assert rep.causes[LOOPS] == 9 * (2 * 64**3 + 1) + 10 * 1, rep.target
    assert rep.causes["FMA convention"] == -10 * 64 * 64  # one ADD fewer per output/trip
    assert rep.residual == 0 and rep.explained
    assert rep.loops[0].trips == 10
    _check_sum(rep)


def _mlp(p, x):
  h = jax.nn.relu(x @ p["w1"] + p["b1"])
  return jax.nn.log_softmax(h @ p["w2"])


def _layernorm(x):
  mu = x.mean(-1, keepdims=True)
  return (x - mu) * lax.rsqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)


def _cnn(w, x):
  y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return lax.reduce_window(jax.nn.relu(y), -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                           "VALID")


_P = {"w1": jax.ShapeDtypeStruct((16, 32), F32), "b1": jax.ShapeDtypeStruct((32,), F32),
      "w2": jax.ShapeDtypeStruct((32, 10), F32)}
_X = jax.ShapeDtypeStruct((4, 16), F32)
_CASES = {
    "mlp": (_mlp, (_P, _X)),
    "softmax": (jax.nn.softmax, (_X,)),
    "layernorm": (_layernorm, (_X,)),
    "cnn": (_cnn, (jax.ShapeDtypeStruct((3, 3, 2, 4), F32),
                   jax.ShapeDtypeStruct((1, 6, 6, 2), F32))),
}


@pytest.mark.parametrize("grad", [False, True], ids=["fwd", "grad"])
@pytest.mark.parametrize("name", sorted(_CASES))
def test_residual_is_zero(name, grad):
  f, args = _CASES[name]
  if grad:
    f = jax.grad(lambda *a, f=f: jnp.sum(f(*a) ** 2))
  rec = reconcile(f, targets=["cpu"])(*args)
  rep = rec["cpu"]
  assert rep.residual == 0, rec.table()
  _check_sum(rep)


def test_table_and_json():
  rec = reconcile(scan_matmul, targets=["cpu"])(W, W)
  text = rec.table()
  assert "loop trips" in text and RESIDUAL in text and "XLA flops / device" in text
  d = rec.to_dict()
  assert d["targets"][0]["causes"][LOOPS] == rec["cpu"].causes[LOOPS]
  assert set(rec["cpu"].causes) == set(CAUSE_ORDER)
  with pytest.raises(KeyError, match="have cpu"):
    rec["gpu:h100"]


def test_unavailable_xla_is_reported_not_raised(monkeypatch):
  r = importlib.import_module("jaxgreen._src.reconciliation")

  monkeypatch.setattr(r, "xla_cost", lambda compiled: XlaCost())
  rec = reconcile(scan_matmul, targets=["cpu"])(W, W)
  assert rec["cpu"].residual is None
  assert "unavailable" in rec.table()


def test_sharded_program_scales_per_device_counts():
  pytest.importorskip("libtpu", reason="TPU targets need the tpu extra")
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  from jaxgreen.targets import mesh

  m = mesh("tpu:v5e:2x2", (4,), ("data",))
  x = jax.ShapeDtypeStruct((16, 64), F32, sharding=NamedSharding(m, P("data")))
  w = jax.ShapeDtypeStruct((64, 64), F32, sharding=NamedSharding(m, P()))
  rep = reconcile(lambda x, w: x @ w, targets=["tpu:v5e:2x2"])(x, w)["tpu:v5e:2x2"]
  assert rep.devices == 4
  assert rep.compiled.muls == 16 * 64 * 64 // 4  # each device: a quarter of the rows
  assert rep.jaxpr.muls == 16 * 64 * 64
  assert rep.residual == 0
  _check_sum(rep)


def test_bad_arguments():
  with pytest.raises(TypeError, match="must be callable"):
    reconcile(3)
  with pytest.raises(ValueError, match="at least one target"):
    reconcile(scan_matmul, targets=[])
  with pytest.raises(jaxgreen.targets.TargetError if hasattr(jaxgreen, "targets") else
                     ValueError, match="not a known"):
    reconcile(scan_matmul, targets=["tpu:v99:2x2"])


def test_xla_float32_rounding_is_named():
  # 2·M·N·K = 2·256·256·257 = 33,685,504 > 2**25: float32 steps are 4 there, so XLA's
  # float32 total cannot hold the one extra flop of the scalar add.
  a = jax.ShapeDtypeStruct((256, 257), F32)
  b = jax.ShapeDtypeStruct((257, 256), F32)
  c = jax.ShapeDtypeStruct((), F32)
  rep = reconcile(lambda a, b, c: (a @ b, c + 1.0), targets=["cpu"])(a, b, c)["cpu"]
  assert rep.xla_replayed == 2 * 256 * 256 * 257 + 1  # exact: dot + one add
  assert rep.xla.flops == 2 * 256 * 256 * 257  # XLA's float32 sum lost the add
  assert rep.causes["XLA float32 rounding"] == 1
  assert rep.residual == 0
  _check_sum(rep)


def test_cublas_custom_call_priced_from_shapes():
  skip_without_gpu_plugin()
  import os
  import subprocess
  import sys

  code = ("import jax, jax.numpy as jnp\n"
          "from jaxgreen._src.reconciliation import reconcile\n"
          "a = jax.ShapeDtypeStruct((64, 128), jnp.float32)\n"
          "b = jax.ShapeDtypeStruct((128, 32), jnp.float32)\n"
          "rep = reconcile(lambda a, b: a @ b, targets=['gpu:h100'])(a, b)['gpu:h100']\n"
          "print(rep.compiled.muls, rep.causes['custom calls'], rep.residual)\n")
  # Without Triton GEMMs the dot becomes a cuBLAS custom call, which XLA prices at -1.
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_gpu_enable_triton_gemm=false")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  muls, custom, residual = out.stdout.split()[-3:]
  assert int(muls) == 64 * 32 * 128  # M·N·K, from the custom call's shapes
  assert int(custom) == 2 * 64 * 32 * 128 + 1  # XLA's dense 2·M·N·K minus its -1
  assert residual == "0"


# -- jaxgreen's own gaps: named per stage, never "compiler changes" -------------------

def test_stage_causes_split_at_the_lowered_stage():
  from jaxgreen._src.cost import Cost
  from jaxgreen._src.reconciliation import COMPILER, LOWERING, UNCOUNTED, stage_causes

  def c(fpo, **unc):
    return Cost(adds=fpo, uncounted=unc)

  # No gaps: jaxpr -> lowered is jax's lowering, lowered -> compiled the compiler's.
  assert stage_causes(c(100), c(90), c(85)) == {UNCOUNTED: 0, LOWERING: 10, COMPILER: 5}
  # The lowered stage missed an operation the jaxpr counted: jaxgreen's gap, on both
  # sides of it (the compiled stage names it differently).
  assert stage_causes(c(100), c(80, top_k=1), c(70, TopK=1)) == {
      UNCOUNTED: 30, LOWERING: 0, COMPILER: 0}
  # The same operation missed by the lowered and compiled walks: the compiler's
  # changes around it still are the compiler's.
  assert stage_causes(c(100), c(80, op=1), c(75, op=1)) == {
      UNCOUNTED: 20, LOWERING: 0, COMPILER: 5}
  # Without a lowered count, per-device compiled counts scale by the devices.
  assert stage_causes(c(100), None, c(20), devices=4) == {
      UNCOUNTED: 0, LOWERING: 0, COMPILER: 20}
  assert stage_causes(c(100, op=1), None, c(20), devices=4)[UNCOUNTED] == 20


def test_uncounted_operations_are_named_per_stage():
  import numpy as np

  def f(x):
    y = jax.pure_callback(lambda a: np.asarray(a) * 2, jax.ShapeDtypeStruct(x.shape, x.dtype),
                          x)
    return y @ x.T

  rec = reconcile(f, targets=["cpu"])(jax.ShapeDtypeStruct((4, 8), F32))
  rep = rec["cpu"]
  unc = rep.uncounted
  assert set(unc) == {"jaxpr", "lowered", "compiled"}
  assert unc["jaxpr"] == {"pure_callback": 1}
  assert all(len(u) == 1 and next(iter(u)).startswith("custom-call")
             for u in (unc["lowered"], unc["compiled"]))
  text = rec.table()
  for stage in ("jaxpr", "lowered", "compiled"):
    assert f"uncounted by jaxgreen: {stage}" in text
  assert "pure_callback x1" in text
  assert rep.causes["compiler changes"] == 0  # the callback is nobody's compiler change
  assert rep.to_dict()["uncounted"] == unc
  _check_sum(rep)


def test_nothing_uncounted_reads_none():
  rec = reconcile(scan_matmul, targets=["cpu"])(W, W)
  assert rec["cpu"].uncounted == {"jaxpr": {}, "lowered": {}, "compiled": {}}
  assert "uncounted by jaxgreen: compiled" in rec.table()


def test_notebook_and_pandas_views():
  x = jax.ShapeDtypeStruct((8, 8), jnp.float32)
  r = jaxgreen.reconcile(lambda a: a @ a, targets=["cpu"], progress=False)(x)
  assert repr(r) == "Reconciliation(targets=['cpu'], explained=[True], unavailable=[])"
  assert repr(r["cpu"]).startswith("TargetReport(target='cpu', devices=1, jaxpr_fpo=960,")
  out = r._repr_html_()
  # 8*8*8 MUL + 8*8*7 ADD = 960 FPO; XLA: 2*8*8*8 = 1024; FMA convention: -8*8 = -64.
  assert ">960<" in out and ">1,024<" in out and ">-64<" in out and "FMA convention" in out
  assert "<script" not in out
  assert r["cpu"]._repr_html_().count("<table") == 2  # the table and its causes
  pytest.importorskip("pandas", reason="to_pandas needs the [pandas] extra")
  df = r.to_pandas()
  assert list(df["target"]) == ["cpu"] and df["jaxpr_fpo"][0] == 960
  assert df["FMA convention"][0] == -64 and bool(df["explained"][0])


def skip_without_gpu_plugin():
  """GPU targets need the gpu extra's CUDA plugin, of the installed jaxlib's release."""
  from jaxgreen._src.devices import gpu_plugin_problem

  if (why := gpu_plugin_problem()) is not None:
    pytest.skip(why)
