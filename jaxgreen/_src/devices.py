"""The devices of a target, created without its hardware.

TPU devices come from libtpu's deviceless topology descriptions
(``pip install 'jaxgreen[tpu]'``), GPU devices from the CUDA PJRT plugin and a
``GpuTargetConfigProto`` built from the chip's figures in :mod:`jaxgreen.chips`
(``pip install 'jaxgreen[gpu]'``). On a machine that has the target's own chips, those
are used instead. Functions here take a :class:`jaxgreen.targets.Target` (any object
with its ``spec``, ``platform``, ``chip`` and ``topology`` attributes).

Example::

  devs = devices_of(jaxgreen.targets.get_target("tpu:v5e:2x2"))  # 4 TPU v5e devices
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import threading
from collections.abc import Sequence
from typing import Any

from jaxgreen._src._hardware import hardware_present
from jaxgreen._src._quiet import quiet_plugin_log, quiet_stderr
from jaxgreen._src._target_error import TargetError
from jaxgreen.chips import TPU_CHIPS, chip_of_device_kind, gpu_target_config


def _compat() -> Any:
  from jaxgreen._src import _compat as compat

  return compat


@functools.cache
def devices_of(t: Any) -> tuple:
  """The devices of target ``t``: deviceless TPU/GPU devices, or the local CPU device.

  Created once per target and kept.

  Raises:
    TargetError: when the target's extra is missing or libtpu rejects the slice.
  """
  if t.platform == "cpu":
    import jax

    # Starting the backends loads every installed PJRT plugin; the CUDA one complains
    # on a machine without a driver.
    with quiet_stderr():
      return tuple(jax.devices("cpu"))
  if t.platform == "tpu":
    return _tpu_devices(t)
  return _gpu_devices(t)


def start_devices(targets: Sequence[Any]) -> None:
  """Creates the devices of every target that can have them, GPU targets first.

  A target whose devices cannot be created (a missing extra, a slice libtpu rejects)
  raises its :class:`TargetError` when it is used, not here.
  """
  for t in sorted(targets, key=lambda t: t.platform != "gpu"):
    with contextlib.suppress(TargetError):  # reported when the target itself is used
      devices_of(t)


def has_local_hardware(platform: str) -> bool:
  """Whether this machine has accelerators of ``platform``, checked without starting jax.

  See :func:`jaxgreen._src._hardware.hardware_present`. Set JAXGREEN_DEVICELESS=1 to compile
  deviceless even on such a machine.
  """
  if os.environ.get("JAXGREEN_DEVICELESS", "").lower() in ("1", "true", "yes"):
    return False
  return hardware_present(platform)


def local_devices(t: Any, wanted: int) -> tuple | None:
  """The machine's own devices for ``t`` when it has the target's chip, else None.

  Used only when the chip matches (device_kind names it, e.g. "NVIDIA H100 80GB HBM3"
  for gpu:h100, "TPU v5 lite" for tpu:v5e) and the machine has at least ``wanted``
  devices (the first ``wanted`` are used); otherwise the target is compiled deviceless.
  """
  if not has_local_hardware(t.platform):
    return None
  import jax

  try:
    with quiet_stderr():
      devs = jax.devices(t.platform)
  except RuntimeError:  # the platform did not start: no usable local device
    return None
  if not devs or chip_of_device_kind(devs[0].device_kind) != t.chip:
    return None
  return tuple(devs[:wanted]) if len(devs) >= wanted else None


def _tpu_devices(t: Any) -> tuple:
  dims = [int(d) for d in t.topology.split("x") if d.isdigit()]
  local = local_devices(t, math.prod(dims))
  if local is not None:
    return local
  try:
    import libtpu  # noqa: F401
  except ImportError:
    raise TargetError(f"target {t.spec!r} needs libtpu to compile for TPU without a TPU: "
                      f"pip install 'jaxgreen[tpu]'") from None
  from jax.experimental import topologies

  # libtpu looks for a TPU VM (metadata server, worker hostnames) when it starts and
  # complains on fd 2 when there is none; environment variables could quiet it but
  # would also change a real TPU VM's setup, so its output is swallowed instead.
  # libtpu takes /tmp/libtpu_lockfile so that one process owns the local TPU chips.
  # A deviceless topology owns no chip, and two processes compiling for TPU at once
  # (a test run and a notebook) must not lock each other out.
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  name = f"{TPU_CHIPS[t.chip][0]}:{t.topology}"
  try:
    with quiet_stderr(keep_other=False):
      topo = topologies.get_topology_desc(platform="tpu", topology_name=name)
  except Exception as e:  # libtpu raises XlaRuntimeError / ValueError for bad slices
    raise TargetError(f"target {t.spec!r}: libtpu rejected topology {name!r} ({e}). Use a "
                      f"slice shape that exists for {t.chip}, e.g. tpu:v5e:2x2, tpu:v5e:16x16, "
                      f"tpu:v4:2x2x1, tpu:v5p:4x4x8, tpu:v6e:2x2") from None
  return tuple(topo.devices)


def _gpu_devices(t: Any) -> tuple:
  local = local_devices(t, int(t.topology or 1))
  if local is not None:
    return local

  problem = gpu_plugin_problem()
  if problem is not None:
    raise TargetError(f"target {t.spec!r}: {problem}")
  from jax.experimental import topologies

  try:
    with quiet_stderr():
      register_cuda_plugin()
      topo = topologies.get_topology_desc(platform="cuda",
                                          target_config=gpu_target_config(t.chip),
                                          topology=f"1x1x{t.topology}")
  except (NotImplementedError, RuntimeError) as e:
    raise TargetError(f"target {t.spec!r}: the CUDA plugin could not describe a deviceless "
                      f"topology ({e}); reinstall it with pip install --force-reinstall "
                      f"'jaxgreen[gpu]'") from None
  return tuple(topo.devices)


# The CUDA plugin's two packages; each release is built for the jaxlib of its version.
_CUDA_PACKAGES = ("jax-cuda12-plugin", "jax-cuda12-pjrt")


def gpu_plugin_problem() -> str | None:
  """Why GPU targets cannot be compiled for without a GPU here, with the fix; None if they can.

  They need the CUDA PJRT plugin of the installed jaxlib's own release (the ``[gpu]``
  extra installs the newest plugin without touching jax; a new jax often comes out days
  before its plugin). The plugin is not loaded to find out: only installed versions are
  compared.

  Example:
    >>> problem = gpu_plugin_problem()
    >>> problem is None or "pip install" in problem
    True
  """
  import importlib.metadata
  import importlib.util

  import jaxlib

  have = {}
  for name in _CUDA_PACKAGES:
    try:
      have[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  if (len(have) < len(_CUDA_PACKAGES) or importlib.util.find_spec("jax_cuda12_plugin") is None
      or importlib.util.find_spec("jax_plugins.xla_cuda12") is None):
    return ("GPU targets need the CUDA PJRT plugin and ptxas to compile for GPU without a "
            "GPU: pip install 'jaxgreen[gpu]'")
  return _version_problem(jaxlib.__version__, have)


def _version_problem(jaxlib_version: str, have: dict[str, str]) -> str | None:
  """The mismatch of the installed CUDA plugin packages and jaxlib, with the fix."""
  if all(v == jaxlib_version for v in have.values()):
    return None
  plugin = have[_CUDA_PACKAGES[0]]
  if len(set(have.values())) == 1 and _release(plugin) < _release(jaxlib_version):
    return (f"jaxlib {jaxlib_version} has no CUDA 12 plugin yet: the installed "
            f"jax-cuda12-plugin {plugin} is built for jax {plugin}, the newest jax release "
            f"with a CUDA plugin when it was installed (pip install -U jax-cuda12-plugin "
            f"jax-cuda12-pjrt brings a newer one once it is out). To compile for GPU "
            f"targets now: pip install 'jax[cuda12-local]=={plugin}'")
  pins = " ".join(f"'{n}=={jaxlib_version}'" for n in _CUDA_PACKAGES)
  found = ", ".join(f"{n} {v}" for n, v in have.items())
  return (f"the installed CUDA plugin ({found}) is not built for jaxlib {jaxlib_version}; "
          f"install the plugin of this jaxlib: pip install {pins}")


def _release(version: str) -> tuple[int, ...]:
  """``"0.12.0.1"`` -> (0, 12, 0, 1); pre-release tags end the numeric part."""
  out = []
  for part in version.split("."):
    digits = "".join(itertools.takewhile(str.isdigit, part))
    if not digits:
      break
    out.append(int(digits))
    if digits != part:
      break
  return tuple(out)


_cuda_lock = threading.Lock()


def register_cuda_plugin() -> None:
  """Makes the CUDA PJRT plugin's deviceless topologies available, whatever jax's state.

  jax registers the plugin when it discovers plugins, but only after checking that the
  CUDA runtime works, which fails on a machine without a driver unless jax's platforms
  exclude cuda. The plugin's own ``initialize()`` is then run once more with that check
  skipped: this registers the compiler (and its custom calls) exactly as a fresh
  ``JAX_PLATFORMS=cpu`` process would, without changing the platforms of the running
  process or its backends (a backend already started is kept; on a machine without a GPU
  jax never starts a cuda backend).
  """
  xla_bridge = _compat().xla_bridge()

  with _cuda_lock:
    with quiet_plugin_log():
      xla_bridge._discover_and_register_pjrt_plugins()  # noqa: SLF001
    if "cuda" in xla_bridge._topology_factories:  # noqa: SLF001
      return
    import jax_plugins.xla_cuda12 as plugin

    saved = os.environ.get("JAX_SKIP_CUDA_CONSTRAINTS_CHECK")
    os.environ["JAX_SKIP_CUDA_CONSTRAINTS_CHECK"] = "1"
    try:
      plugin.initialize()
    finally:
      if saved is None:
        os.environ.pop("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", None)
      else:
        os.environ["JAX_SKIP_CUDA_CONSTRAINTS_CHECK"] = saved
