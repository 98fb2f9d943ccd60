"""Target strings, deviceless devices, meshes, and the errors for bad targets."""

import os
import subprocess
import sys
import textwrap

import pytest

from jaxgreen._src import devices
from jaxgreen._src._quiet import quiet_stderr
from jaxgreen.chips import gpu_target_config
from jaxgreen.targets import TargetError, get_target, mesh


def skip_without_gpu_plugin():
  """GPU targets need the gpu extra's CUDA plugin, of the installed jaxlib's release."""
  from jaxgreen._src.devices import gpu_plugin_problem

  if (why := gpu_plugin_problem()) is not None:
    pytest.skip(why)



@pytest.mark.parametrize("spec, platform, chip, topology", [
    ("cpu", "cpu", "", ""),
    ("tpu:v5e:2x2", "tpu", "v5e", "2x2"),
    ("tpu:v4:8x8x8", "tpu", "v4", "8x8x8"),
    ("TPU:V5P:4x4x8", "tpu", "v5p", "4x4x8"),
    ("gpu:h100", "gpu", "h100", "1"),
    ("gpu:h100x8", "gpu", "h100", "8"),
    ("gpu:b200", "gpu", "b200", "1"),
])
def test_parse(spec, platform, chip, topology):
  t = get_target(spec)
  assert (t.platform, t.chip, t.topology) == (platform, chip, topology)
  assert get_target(t) is t


@pytest.mark.parametrize("spec, words", [
    ("tpu:v9:2x2", ["not a known TPU target", "v5e"]),
    ("tpu:v5e:2x2x1", ["2 dimensions", "tpu:v5e:2x2"]),
    ("tpu:v4:2x2", ["3 dimensions", "tpu:v4:2x2x1"]),
    ("gpu:x100", ["not a known GPU target", "h100"]),
    ("gpu:h100x0", ["must be >= 1"]),
    ("tpu:v5e:0x2", ["every topology dimension must be >= 1", "tpu:v5e:2x2"]),  # not SIGFPE
    ("cuda", ["not a known target", "gpu:h100x8"]),
    (3, ["must be a string"]),
])
def test_bad_targets_name_the_fix(spec, words):
  with pytest.raises(TargetError) as e:
    get_target(spec)
  for w in words:
    assert w in str(e.value)


def test_gpu_target_config_uses_chip_figures():
  text = gpu_target_config("h100")
  assert "core_count: 132" in text  # H100 SXM5 SMs
  assert "cuda_compute_capability { major: 9 }" in text
  assert 'device_description_str: "NVIDIA H100 80GB HBM3"' in text
  assert "cuda_compute_capability { major: 10 }" in gpu_target_config("b200")
  assert "major: 8 minor: 9" in gpu_target_config("l4")


def test_quiet_stderr_drops_only_noise(capfd):
  with quiet_stderr():
    os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine\n")
    os.write(2, b"a real problem\n")
  err = capfd.readouterr().err
  assert "cudart_stub" not in err
  assert "a real problem" in err


def test_quiet_stderr_drops_plugin_traceback(capfd):
  with quiet_stderr():
    os.write(2, textwrap.dedent("""\
        Jax plugin configuration error: Exception when calling initialize()
        Traceback (most recent call last):
          File "x.py", line 1, in f
        RuntimeError: Unable to load CUDA. Is it installed?
        kept line
        """).encode())
  err = capfd.readouterr().err
  assert "Traceback" not in err and "Unable to load CUDA" not in err
  assert "kept line" in err


def test_cpu_target_compiles():
  import jax
  import jax.numpy as jnp

  t = get_target("cpu")
  x = jax.ShapeDtypeStruct((4, 8), jnp.float32)
  _, compiled = t.compile(lambda a: a * 2, x)
  assert "multiply" in compiled.as_text()
  assert t.num_devices >= 1


def test_missing_tpu_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "libtpu", None)  # makes `import libtpu` fail
  devices.devices_of.cache_clear()
  try:
    with pytest.raises(TargetError, match=r"pip install 'jaxgreen\[tpu\]'"):
      _ = get_target("tpu:v6e:4x4").devices
  finally:
    devices.devices_of.cache_clear()


def test_missing_gpu_extra(monkeypatch):
  import importlib.util

  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "jax_cuda12_plugin" else real(name, *a))
  devices.devices_of.cache_clear()
  try:
    with pytest.raises(TargetError, match=r"pip install 'jaxgreen\[gpu\]'"):
      _ = get_target("gpu:a100x2").devices
  finally:
    devices.devices_of.cache_clear()


def test_tpu_topology_libtpu_rejects():
  pytest.importorskip("libtpu", reason="TPU targets need the tpu extra")
  with pytest.raises(TargetError, match="libtpu rejected topology 'v5e:3x7'"):
    _ = get_target("tpu:v5e:3x7").devices


def test_tpu_mesh_and_sharded_compile():
  pytest.importorskip("libtpu", reason="TPU targets need the tpu extra")
  import jax
  import jax.numpy as jnp
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  m = mesh("tpu:v5e:2x2", (2, 2), ("data", "model"))
  assert m.devices.shape == (2, 2)
  assert m.devices.flat[0].platform == "tpu"
  x = jax.ShapeDtypeStruct((8, 128), jnp.float32, sharding=NamedSharding(m, P("data")))
  _, compiled = get_target("tpu:v5e:2x2").compile(lambda a: a * 2, x)
  assert "f32[4,128]" in compiled.as_text()  # per-device shard: 8 rows / 2
  with pytest.raises(TargetError, match="has 4 devices"):
    mesh("tpu:v5e:2x2", (3,), ("x",))


_LIVE = """
import jax, jax.numpy as jnp
if LIVE:
  float(jnp.ones(3).sum())  # the user's own jax work starts jax's default backends
import jaxgreen

def f(a, b):
  return jnp.tanh(a @ b).sum()

x = jax.ShapeDtypeStruct((16, 32), jnp.float32)
y = jax.ShapeDtypeStruct((32, 8), jnp.float32)
out = [jaxgreen.count(f, stage="compiled", target=t)(x, y).to_dict()
       for t in ("gpu:h100", "tpu:v5e:2x2")]
c = jaxgreen.compare(f, ["tpu:v5e:2x2", "gpu:h100"])(x, y)
out += [(r.target, r.pod.per_device.fpo, r.pod.devices, r.pod.xla.flops) for r in c]
out += [jax.default_backend(), float(jnp.ones(3).sum())]
print(repr(out))
"""


@pytest.mark.slow
def test_gpu_and_tpu_targets_in_a_live_session_count_as_a_fresh_process():
  skip_without_gpu_plugin()
  pytest.importorskip("libtpu", reason="TPU targets need the tpu extra")
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  runs = {}
  for live in (True, False):
    out = subprocess.run([sys.executable, "-c", f"LIVE = {live}\n" + _LIVE],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    runs[live] = out.stdout.strip().splitlines()[-1]
  assert runs[True] == runs[False]
  assert "('gpu:h100', " in runs[True] and "('tpu:v5e:2x2', " in runs[True]
  assert "'cpu', 3.0]" in runs[True]  # the user's jax still runs on its own backend


def test_gpu_target_does_not_change_jax_platforms():
  skip_without_gpu_plugin()
  import jax

  before = jax.config.jax_platforms
  assert get_target("gpu:h100").devices[0].platform in ("gpu", "cuda")
  assert jax.config.jax_platforms == before


def test_quiet_stderr_nests():
  import threading

  def nested():
    with quiet_stderr(), quiet_stderr():
      pass

  th = threading.Thread(target=nested, daemon=True)
  th.start()
  th.join(timeout=10)
  assert not th.is_alive()  # a nested block (a backend starting inside) must not deadlock


class _FakeDevice:
  def __init__(self, kind):
    self.device_kind = kind


@pytest.mark.parametrize("spec, wanted, kinds, expect_local", [
    ("gpu:h100", 1, ["NVIDIA H100 80GB HBM3"] * 2, 1),  # 1 of the 2 local H100s
    ("gpu:h100x2", 2, ["NVIDIA H100 80GB HBM3"] * 2, 2),
    ("gpu:h100x8", 8, ["NVIDIA H100 80GB HBM3"] * 2, 0),  # too few: compiled deviceless
    ("gpu:h100", 1, ["NVIDIA A100-SXM4-80GB"], 0),  # another chip: compiled deviceless
    ("tpu:v5e:2x2", 2 * 2, ["TPU v5 lite"] * 4, 4),  # a 2x2 slice on a 4-chip VM
    ("tpu:v5e:2x4", 2 * 4, ["TPU v5 lite"] * 4, 0),  # a slice larger than the machine
    ("tpu:v4:2x2x1", 2 * 2 * 1, ["TPU v5 lite"] * 4, 0),  # v5e chips are not v4
])
def test_a_machine_with_the_chip_uses_its_own_devices(monkeypatch, spec, wanted, kinds,
                                                      expect_local):
  import jax

  local = [_FakeDevice(k) for k in kinds]
  monkeypatch.setattr(devices, "has_local_hardware", lambda platform: True)
  monkeypatch.setattr(jax, "devices", lambda platform=None: local)
  got = devices.local_devices(get_target(spec), wanted)
  assert (len(got) if got else 0) == expect_local


def test_deviceless_can_be_forced(monkeypatch):
  monkeypatch.setenv("JAXGREEN_DEVICELESS", "1")
  assert not devices.has_local_hardware("gpu")
  assert not devices.has_local_hardware("tpu")
