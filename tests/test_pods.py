"""Memory figures and redundancy of sharded programs compiled for pods (jaxgreen._src.pods)."""

from __future__ import annotations

import pytest

from jaxgreen._src import pods


class _Stats:
  argument_size_in_bytes = 100
  output_size_in_bytes = 20
  temp_size_in_bytes = 30
  alias_size_in_bytes = 10


class _Compiled:
  def __init__(self, ma):
    self._ma = ma

  def memory_analysis(self):
    if isinstance(self._ma, Exception):
      raise self._ma
    return self._ma


def test_memory_stats_best_effort():
  m = pods.memory_stats(_Compiled(_Stats()))
  assert m.source == "memory_analysis"
  assert m.peak_bytes == 100 + 20 + 30 - 10  # no peak reported: args + out + temp - alias
  assert m.code_bytes is None  # field missing: unavailable
  assert pods.memory_stats(_Compiled(None)).source == "unavailable"
  assert pods.memory_stats(_Compiled(NotImplementedError())).peak_bytes is None


# -- compiled for a TPU slice (needs libtpu) ---------------------------------------------

@pytest.fixture(scope="module")
def tpu_mesh():
  pytest.importorskip("libtpu")
  from jaxgreen.targets import mesh

  return mesh("tpu:v5e:2x2", (4,), ("x",))


def _struct(shape, mesh, spec):
  import jax
  import jax.numpy as jnp
  from jax.sharding import NamedSharding

  return jax.ShapeDtypeStruct(shape, jnp.float32, sharding=NamedSharding(mesh, spec))


def test_replicated_program_has_redundancy_n(tpu_mesh):
  import jax.numpy as jnp
  from jax.sharding import PartitionSpec as P

  x = _struct((32, 64), tpu_mesh, P())
  w = _struct((64, 32), tpu_mesh, P())
  r = pods.analyze(lambda a, b: jnp.tanh(a @ b), "tpu:v5e:2x2", x, w)
  assert r.devices == 4
  assert r.per_device.fpo == r.logical.fpo  # every device does all of it
  assert r.redundancy == 4.0
  assert r.collectives == {}


def test_data_parallel_matmul_has_redundancy_1(tpu_mesh):
  from jax.sharding import PartitionSpec as P

  x = _struct((32, 64), tpu_mesh, P("x"))
  w = _struct((64, 32), tpu_mesh, P())
  r = pods.analyze(lambda a, b: a @ b, "tpu:v5e:2x2", x, w)
  assert r.logical.fpo == 32 * 32 * 64 + 32 * 32 * 63  # MUL M*N*K + ADD M*N*(K-1)
  assert r.per_device.fpo * 4 == r.logical.fpo
  assert r.redundancy == 1.0
  assert r.memory.source in ("memory_analysis", "unavailable")


def test_shard_map_psum_is_one_all_reduce(tpu_mesh):
  import jax
  from jax.sharding import PartitionSpec as P

  f = jax.jit(jax.shard_map(lambda b: jax.lax.psum(b * 2.0, "x"), mesh=tpu_mesh,
                            in_specs=P("x"), out_specs=P()))
  x = _struct((32, 16), tpu_mesh, P("x"))
  r = pods.analyze(f, "tpu:v5e:2x2", x)
  ar = r.collectives["all-reduce"]
  assert ar.count == 1
  assert ar.operand_bytes == 8 * 16 * 4  # one (32/4, 16) f32 block per device
  assert ar.sent_bytes == pytest.approx(2 * 3 / 4 * 512)  # 2(n-1)/n S
  assert r.sent_bytes == ar.sent_bytes


def test_compile_readable_recompiles_unreadable_tpu_hlo(monkeypatch):
  import jaxgreen.targets as targets

  class Unreadable:
    def as_text(self):
      raise RuntimeError("INTERNAL: async-update instruction should have 1 operands")

  class Readable:
    def as_text(self):
      return "HloModule m"

  class Lowered:
    options = None

    def compile(self, compiler_options=None):
      Lowered.options = compiler_options
      return Readable()

  class FakeTarget:
    platform = "tpu"

    def compile(self, fn, *args, static_argnums=(), **kwargs):
      return Lowered(), Unreadable()

  monkeypatch.setattr(targets, "get_target", lambda t: t)
  compiled, text, notes = pods.compile_readable(FakeTarget(), lambda x: x, 1)
  assert text == "HloModule m" and isinstance(compiled, Readable)
  assert Lowered.options == {"xla_tpu_offload_gather_to_sparsecore": "false"}
  assert "compiled again" in notes[0]
  FakeTarget.platform = "gpu"  # elsewhere the error is not hidden
  with pytest.raises(RuntimeError, match="async-update"):
    pods.compile_readable(FakeTarget(), lambda x: x, 1)


def _pallas_double(x):
  import jax
  import jax.numpy as jnp
  from jax.experimental import pallas as pl

  def kernel(x_ref, o_ref):
    o_ref[...] = x_ref[...] * 2.0 + 1.0

  return pl.pallas_call(
      kernel, grid=(4,), name="double_plus_one",
      in_specs=[pl.BlockSpec((8, 128), lambda i: (i, 0))],
      out_specs=pl.BlockSpec((8, 128), lambda i: (i, 0)),
      out_shape=jax.ShapeDtypeStruct((32, 128), jnp.float32),
      # deliberately wrong: the report must not rest on the author's figure
      cost_estimate=pl.CostEstimate(flops=1, transcendentals=0, bytes_accessed=0))(x)


def test_pallas_kernels_count_from_their_jaxpr_in_pod_reports(tpu_mesh):
  import jax
  import jax.numpy as jnp

  x = jax.ShapeDtypeStruct((32, 128), jnp.float32)
  r = pods.analyze(_pallas_double, "tpu:v5e:2x2", x)
  # 4 grid points x (8 x 128) elements, one MUL and one ADD each
  assert r.logical.muls == r.logical.adds == 4 * 8 * 128
  assert r.per_device.fpo == r.logical.fpo  # replicated: every device runs the kernel
  assert r.per_device.exact and not r.per_device.uncounted
  assert not any("estimate" in n for n in r.notes)
