"""GPU targets when the CUDA plugin is missing or is not the installed jaxlib's release:
one TargetError naming the newest jax with a plugin and the command that installs it.

The installed versions are simulated (importlib.metadata and jaxlib's version), so these
run with or without the gpu extra; nothing loads a plugin.
"""

import importlib.metadata
import importlib.util

import jax
import jax.numpy as jnp
import jaxlib
import pytest

import jaxgreen
from jaxgreen._src import devices
from jaxgreen.targets import TargetError

X = jax.ShapeDtypeStruct((8, 8), jnp.float32)


@pytest.fixture
def installed(monkeypatch):
  """Pretends jaxlib and the CUDA plugin packages are installed at given versions."""

  def install(jaxlib_version, plugin=None, pjrt=None):
    versions = {"jax-cuda12-plugin": plugin, "jax-cuda12-pjrt": pjrt or plugin}
    real_version, real_spec = importlib.metadata.version, importlib.util.find_spec

    def version(name):
      if name in versions:
        if versions[name] is None:
          raise importlib.metadata.PackageNotFoundError(name)
        return versions[name]
      return real_version(name)

    def find_spec(name, *a, **k):
      if name in ("jax_cuda12_plugin", "jax_plugins.xla_cuda12"):
        return object() if plugin is not None else None
      return real_spec(name, *a, **k)

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(jaxlib, "__version__", jaxlib_version)
    monkeypatch.setattr(devices, "local_devices", lambda t, wanted: None)  # no GPU here
    devices.devices_of.cache_clear()

  yield install
  devices.devices_of.cache_clear()


def test_a_new_jax_without_its_plugin_names_the_newest_jax_with_one(installed):
  installed("0.12.1", plugin="0.12.0.1")
  with pytest.raises(TargetError) as e:
    jaxgreen.count(lambda a: a @ a, stage="compiled", target="gpu:h100")(X)
  msg = str(e.value)
  assert msg.startswith("target 'gpu:h100': jaxlib 0.12.1 has no CUDA 12 plugin yet")
  assert "built for jax 0.12.0.1, the newest jax release with a CUDA plugin" in msg
  assert msg.endswith("pip install 'jax[cuda12-local]==0.12.0.1'")
  assert msg.count("pip install '") == 1  # one error, one command: not a chain of causes
  assert e.value.__cause__ is None


def test_a_plugin_newer_than_jaxlib_gets_the_plugin_of_this_jaxlib(installed):
  installed("0.10.2", plugin="0.12.0.1")
  msg = devices.gpu_plugin_problem()
  assert msg == ("the installed CUDA plugin (jax-cuda12-plugin 0.12.0.1, jax-cuda12-pjrt "
                 "0.12.0.1) is not built for jaxlib 0.10.2; install the plugin of this "
                 "jaxlib: pip install 'jax-cuda12-plugin==0.10.2' 'jax-cuda12-pjrt==0.10.2'")


def test_plugin_halves_of_two_releases(installed):
  installed("0.12.1", plugin="0.12.1", pjrt="0.12.0.1")
  assert "pip install 'jax-cuda12-plugin==0.12.1' 'jax-cuda12-pjrt==0.12.1'" in (
      devices.gpu_plugin_problem())


def test_no_plugin_names_the_extra(installed):
  installed("0.12.1")
  with pytest.raises(TargetError, match=r"pip install 'jaxgreen\[gpu\]'"):
    jaxgreen.reconcile(lambda a: a @ a, targets=["gpu:h100"], progress=False)(X)


def test_matching_plugin_is_no_problem(installed):
  installed("0.12.1", plugin="0.12.1")
  assert devices.gpu_plugin_problem() is None


def test_release_order():
  assert devices._release("0.12.0.1") < devices._release("0.12.1")
  assert devices._release("0.12.1rc1") == (0, 12, 1)
  assert devices._release("0.10.2") < devices._release("0.12.0.1")
