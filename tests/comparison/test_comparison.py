"""One program on several targets: mesh shapes, specs, the report and its formats."""

from __future__ import annotations

import json
import sys

import jax
import pytest

from jaxgreen._src.comparison import Comparison, mesh_shape_for


def skip_without_gpu_plugin():
  """GPU targets need the gpu extra's CUDA plugin, of the installed jaxlib's release."""
  from jaxgreen._src.devices import gpu_plugin_problem

  if (why := gpu_plugin_problem()) is not None:
    pytest.skip(why)



def test_mesh_shape_for():
  assert mesh_shape_for(16, {"data": -1, "model": 2}) == {"data": 8, "model": 2}  # 16 / 2
  assert mesh_shape_for(8, {"data": -1, "model": 2}) == {"data": 4, "model": 2}  # 8 / 2
  assert mesh_shape_for(8, ("data", "model")) == {"data": 8, "model": 1}
  assert mesh_shape_for(4, None) == {"x": 4}
  assert mesh_shape_for(8, {"a": -1, "b": 2}, override=(2, 4)) == {"a": 2, "b": 4}
  with pytest.raises(ValueError, match="not divisible"):
    mesh_shape_for(6, {"data": -1, "model": 4})
  with pytest.raises(ValueError, match="at most one -1"):
    mesh_shape_for(8, {"a": -1, "b": -1})
  with pytest.raises(ValueError, match="multiply to 4"):
    mesh_shape_for(8, {"a": 2, "b": 2})


def test_place_checks_prefix():
  import jax.numpy as jnp
  from jax.sharding import PartitionSpec as P

  from jaxgreen._src.comparison import place
  from jaxgreen.targets import mesh

  m = mesh("cpu", (1,), ("x",))
  x = jax.ShapeDtypeStruct((4, 4), jnp.float32)
  tree = {"a": x, "b": x}
  out = place([tree, x], [{"a": P("x"), "b": None}, P()], m)
  assert out[0]["a"].sharding.spec == P("x") and out[0]["b"].sharding.spec == P()
  with pytest.raises(ValueError, match="2 positional arguments"):
    place([x, x], [P()], m)
  with pytest.raises(ValueError, match="not a pytree prefix"):
    place([tree], [{"c": P()}], m)


def _mlp(params, x):
  import jax.numpy as jnp

  h = jnp.tanh(x @ params["w1"])
  h = jax.lax.with_sharding_constraint(h, jax.sharding.PartitionSpec("data", None))
  return jnp.mean((h @ params["w2"]) ** 2)


@pytest.fixture(scope="module")
def cmp() -> Comparison:
  pytest.importorskip("libtpu")
  skip_without_gpu_plugin()
  import jax.numpy as jnp
  from jax.sharding import PartitionSpec as P

  from jaxgreen._src.comparison import compare

  params = {"w1": jax.ShapeDtypeStruct((32, 64), jnp.float32),
            "w2": jax.ShapeDtypeStruct((64, 16), jnp.float32)}
  x = jax.ShapeDtypeStruct((16, 32), jnp.float32)
  return compare(_mlp, ["tpu:v5e:2x2", "gpu:h100x2"], mesh_axes={"data": -1},
                 in_specs=({"w1": P(), "w2": P()}, P("data")),
                 measured_step_s={"gpu:h100x2": 1e-3}, name="mlp")(params, x)


def test_same_global_fpo_on_tpu_and_gpu(cmp):
  tpu, gpu = cmp["tpu:v5e:2x2"], cmp["gpu:h100x2"]
  assert cmp.same_global_fpo
  assert tpu.global_fpo == gpu.global_fpo
  assert tpu.global_fpo >= 16 * 64 * 32 + 16 * 64 * 31  # at least the first matmul
  assert (tpu.pod.devices, gpu.pod.devices) == (4, 2)
  assert dict(tpu.mesh_shape) == {"data": 4} and dict(gpu.mesh_shape) == {"data": 2}
  # Batch-sharded over 4 vs 2 devices: a device does about half as much on the TPU pod.
  assert tpu.pod.per_device.fpo < gpu.pod.per_device.fpo
  assert tpu.roofline.chip == "v5e" and gpu.roofline.chip == "h100"


def test_estimates(cmp):
  tpu, gpu = cmp["tpu:v5e:2x2"], cmp["gpu:h100x2"]
  assert tpu.energy_j is None and tpu.fpo_per_joule is None  # v5e: no published TDP
  assert gpu.energy_j == pytest.approx(700 * gpu.roofline.step_s * 2)  # TDP x time x devices
  assert gpu.fpo_per_joule == pytest.approx(gpu.global_fpo / gpu.energy_j)
  assert gpu.mfu == pytest.approx(gpu.global_fpo / 2 / (1e-3 * 67e12))  # f32: the fp32 peak
  assert tpu.mfu is None  # no measured time given


def test_report_formats(cmp, tmp_path):
  text = cmp.table()
  assert "tpu:v5e:2x2" in text and "gpu:h100x2" in text
  assert "global FPO (jaxpr)" in text and "unavailable" in text and "estimate" in text
  assert f"{cmp.results[0].global_fpo:,}" in text
  md = cmp.markdown()
  assert md.startswith("| ") and "| ---:" in md.splitlines()[1] + " | ---:"
  d = json.loads(cmp.to_json())
  assert [t["target"] for t in d["targets"]] == ["tpu:v5e:2x2", "gpu:h100x2"]
  assert d["targets"][1]["energy_label"].startswith("estimate")
  pytest.importorskip("matplotlib")
  path = tmp_path / "cmp.png"
  cmp.plot(str(path))
  assert path.stat().st_size > 1000


def test_plot_without_matplotlib(cmp, monkeypatch):
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  with pytest.raises(ImportError, match=r"jaxgreen\[plot\]"):
    cmp.plot()
  with pytest.raises(ValueError, match="unknown"):
    cmp.plot(metrics=("speed",))


def test_print_report_and_cli(cmp, tmp_path, capsys):
  import io

  from jaxgreen._src.cli.compare import run_cli
  from jaxgreen._src.comparison import print_report

  buf = io.StringIO()
  print_report(cmp, fmt="markdown", file=buf)
  assert buf.getvalue().startswith("| ")
  with pytest.raises(ValueError, match="fmt='html'"):
    print_report(cmp, fmt="html", file=buf)
  mod = tmp_path / "prog.py"
  mod.write_text("import jax.numpy as jnp\n\ndef f(x):\n  return jnp.sin(x) * 2.0\n")
  assert run_cli(f"{mod}:f", targets=["tpu:v5e:2x2"], arg_specs=["f32[8,16]"],
                 mesh="x=-1", in_specs=["x,None"], fmt="json", file=buf) == 0
  out = json.loads(buf.getvalue().split("\n", 1)[1][buf.getvalue().split("\n", 1)[1]
                                                    .index("{"):])
  assert out["targets"][0]["devices"] == 4


def test_bad_arguments():
  from jaxgreen._src.comparison import compare
  from jaxgreen.targets import TargetError

  with pytest.raises(TargetError):
    compare(_mlp, ["tpu:v9z:2x2"])
  with pytest.raises(ValueError, match="not both"):
    compare(_mlp, ["cpu"], in_specs=(), shard=lambda t, m: ())
  with pytest.raises(TypeError, match="callable"):
    compare(3, ["cpu"])


def test_sharded_flax_transformer_on_tpu_and_gpu_pods():
  pytest.importorskip("libtpu")
  skip_without_gpu_plugin()
  from examples.sharded_transformer import Config, setup
  from jaxgreen._src.comparison import compare

  s = setup(Config(vocab=64, d_model=32, n_head=2, d_ff=64, n_layer=1, seq=8, batch=8))
  c = compare(s.fn, ["tpu:v5e:4x4", "gpu:h100x8"], mesh_axes=s.mesh_axes,
              in_specs=s.in_specs)(*s.args)
  tpu, gpu = c["tpu:v5e:4x4"], c["gpu:h100x8"]
  assert c.same_global_fpo and tpu.global_fpo > 0
  assert dict(tpu.mesh_shape) == {"data": 8, "model": 2}  # 16 / 2
  assert dict(gpu.mesh_shape) == {"data": 4, "model": 2}  # 8 / 2
  assert tpu.pod.per_device.fpo != gpu.pod.per_device.fpo
  assert tpu.pod.collectives and gpu.pod.collectives  # tensor parallelism communicates
  assert 0.9 < tpu.pod.redundancy < 2 and 0.9 < gpu.pod.redundancy < 2


def test_mesh_that_does_not_fit_names_the_target():
  from jaxgreen._src.comparison import compare

  x = jax.ShapeDtypeStruct((4, 4), jax.numpy.float32)
  with pytest.raises(ValueError, match=r"target 'cpu' \(1 devices\).*not divisible by 2"):
    compare(lambda a: a, ["cpu"], mesh_axes={"data": -1, "model": 2})(x)


def test_gpu_target_after_another_target_in_a_fresh_process():
  pytest.importorskip("libtpu", reason="TPU targets need the tpu extra")
  skip_without_gpu_plugin()
  import os
  import subprocess

  # Without JAX_PLATFORMS: the GPU topology must be created before the TPU target's
  # count starts a backend.
  code = ("import jax, jax.numpy as jnp, jaxgreen\n"
          "x = jax.ShapeDtypeStruct((8, 16), jnp.float32)\n"
          "c = jaxgreen.compare(jnp.sum, ['tpu:v5e:2x2', 'gpu:h100x2'])(x)\n"
          "print(*(r.pod.devices for r in c))\n")
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split()[-2:] == ["4", "2"]  # 2x2 TPU chips, 2 GPUs


@pytest.mark.parametrize("kw, match", [
    ({"measured_step_s": {"gpu:h100x2": 0.0}}, r"measured_step_s=\{'gpu:h100x2': 0.0\}"),
    ({"measured_step_s": {"gpu:h100x8": 1e-3}}, "'gpu:h100x8' is not one of the targets"),
    ({"mesh_shapes": {"tpu:v5e:2x2": (4,)}}, r"mesh_shapes=\{'tpu:v5e:2x2'"),
])
def test_per_target_arguments_are_checked_before_any_work(kw, match):
  from jaxgreen._src.comparison import compare

  with pytest.raises(ValueError, match=match):
    compare(lambda a: a, ["gpu:h100x2"], **kw)
