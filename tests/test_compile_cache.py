"""The compilation cache: a second compilation of the same program is a file read."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jaxgreen


def skip_without_gpu_plugin():
  """GPU targets need the gpu extra's CUDA plugin, of the installed jaxlib's release."""
  from jaxgreen._src.devices import gpu_plugin_problem

  if (why := gpu_plugin_problem()) is not None:
    pytest.skip(why)



@pytest.mark.parametrize("spec, lib", [("tpu:v5e:2x2", "libtpu"),
                                       ("gpu:h100", "jax_cuda12_plugin")])
def test_second_compilation_comes_from_the_cache(spec, lib, tmp_path, monkeypatch):
  if lib == "jax_cuda12_plugin":
    skip_without_gpu_plugin()
  pytest.importorskip(lib, reason=f"{spec} needs its extra")
  from jaxgreen import targets
  from jaxgreen._src.compile_cache import CachedExecutable

  monkeypatch.setenv("JAXGREEN_CACHE_DIR", str(tmp_path))

  def g(a, b):
    return jax.lax.fori_loop(0, 3, lambda i, c: jnp.tanh(c @ b), a).sum()

  x, y = jax.ShapeDtypeStruct((8, 16), jnp.float32), jax.ShapeDtypeStruct((16, 16),
                                                                           jnp.float32)
  r1 = jaxgreen.reconcile(g, targets=[spec])(x, y)[spec]
  assert len(list(tmp_path.rglob("*.json.gz"))) == 1
  _, c = targets.get_target(spec).compile(g, x, y)
  assert isinstance(c, CachedExecutable)
  r2 = jaxgreen.reconcile(g, targets=[spec])(x, y)[spec]
  assert r2.to_dict() | {"compile_seconds": 0, "walk_seconds": 0} == \
      r1.to_dict() | {"compile_seconds": 0, "walk_seconds": 0}
  assert r2.xla.flops and r2.xla.source == r1.xla.source
  monkeypatch.setenv("JAXGREEN_CACHE", "0")
  _, c = targets.get_target(spec).compile(g, x, y)
  assert not isinstance(c, CachedExecutable)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
  from jaxgreen._src.compile_cache import cache_dir

  monkeypatch.delenv("JAXGREEN_CACHE_DIR", raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert cache_dir() == str(tmp_path / "jaxgreen" / "compiled")
  monkeypatch.setenv("JAXGREEN_CACHE_DIR", str(tmp_path / "x"))
  assert cache_dir() == str(tmp_path / "x")
  monkeypatch.setenv("JAXGREEN_CACHE_DIR", "")
  assert cache_dir() is None
