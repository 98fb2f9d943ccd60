"""Compilation targets: ``"cpu"``, ``"tpu:v5e:2x2"``, ``"gpu:h100"``, ``"gpu:h100x8"``.

A target names a machine a program is compiled for. TPU and GPU programs are compiled
*deviceless* on the machine at hand: TPU through libtpu's topology description
(``pip install 'jaxgreen[tpu]'``), GPU through the CUDA PJRT plugin and a
``GpuTargetConfigProto`` built from the chip's public figures
(``pip install 'jaxgreen[gpu]'``). Nothing is executed; the compiled executable is only
read (its optimized HLO and XLA's cost analysis). The devices are created by
:mod:`jaxgreen._src.devices`, compilations kept by :mod:`jaxgreen._src.compile_cache`.

Example:
  >>> t = get_target("tpu:v5e:2x2")
  >>> t.platform, t.chip, t.topology
  ('tpu', 'v5e', '2x2')
  >>> get_target("GPU:H100x8").spec
  'gpu:h100x8'

Compiling (needs the ``[tpu]`` extra)::

  t = jaxgreen.targets.get_target("tpu:v5e:2x2")
  t.num_devices                         # 4
  lowered, compiled = t.compile(f, x_struct)
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from jaxgreen._src._args import static_argnums_of
from jaxgreen._src._quiet import quiet_stderr
from jaxgreen._src._target_error import TargetError as TargetError
from jaxgreen._src.compile_cache import cache_get, cache_key, cache_put
from jaxgreen._src.devices import devices_of
from jaxgreen.chips import GPU_CHIPS, TPU_CHIPS

__all__ = ["Target", "TargetError", "get_target", "mesh"]

# Names earlier releases re-exported here: still reachable, with a warning.
_MOVED = {
    "import_jax_quietly": "jaxgreen._src._quiet",
    "quiet_stderr": "jaxgreen._src._quiet",
    "CachedExecutable": "jaxgreen._src.compile_cache",
    "cache_dir": "jaxgreen._src.compile_cache",
    "start_devices": "jaxgreen._src.devices",
}


def __getattr__(name: str) -> Any:
  if name not in _MOVED:
    raise AttributeError(f"module 'jaxgreen.targets' has no attribute {name!r}")
  import importlib
  import warnings

  warnings.warn(f"jaxgreen.targets.{name} is private since jaxgreen 0.2 (it lives in "
                f"{_MOVED[name]}) and will be removed from here", DeprecationWarning,
                stacklevel=2)
  return getattr(importlib.import_module(_MOVED[name]), name)


_TPU_RE = re.compile(r"^tpu:([a-z0-9]+):(\d+(?:x\d+)*)$")
_GPU_RE = re.compile(r"^gpu:([a-z0-9]+?)(?:x(\d+))?$")


def _help() -> str:
  return (f"known targets: 'cpu', 'tpu:<chip>:<topology>' with chip in "
          f"{', '.join(TPU_CHIPS)} (e.g. tpu:v5e:2x2, tpu:v4:2x2x1, tpu:v5p:4x4x8), "
          f"'gpu:<chip>' or 'gpu:<chip>x<n>' with chip in {', '.join(GPU_CHIPS)} "
          f"(e.g. gpu:h100, gpu:h100x8)")


@dataclasses.dataclass(frozen=True)
class Target:
  """One compilation target.

  Attributes:
    spec: the normalised target string, e.g. ``"tpu:v5e:2x2"``.
    platform: ``"cpu"``, ``"tpu"`` or ``"gpu"``.
    chip: ``"v5e"``, ``"h100"``, ... (``""`` for cpu).
    topology: the slice shape for TPU (``"2x2"``), the GPU count for GPU (``"8"``).
  """

  spec: str
  platform: str
  chip: str = ""
  topology: str = ""

  @property
  def devices(self) -> list:
    """The target's devices (deviceless TPU/GPU devices, or the local CPU device)."""
    return list(devices_of(self))

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def mesh(self, shape: Sequence[int], names: Sequence[str]):
    """A ``jax.sharding.Mesh`` of this target's devices; see :func:`mesh`."""
    return mesh(self, shape, names)

  def place(self, args: Any) -> Any:
    """``args`` as ShapeDtypeStructs on this target.

    Leaves that already carry a sharding over this target's devices keep it; every other
    array-like leaf is placed on the target's first device.
    """
    import jax

    devices = self.devices
    own = {id(d) for d in devices}
    # (jax 0.12.1 deprecates naming jax.sharding.SingleDeviceSharding; this is the same)
    single = jax.sharding.make_single_device_sharding(devices[0])

    def one(x):
      if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        return x
      sh = getattr(x, "sharding", None)
      if sh is not None and all(id(d) in own for d in getattr(sh, "device_set", ())):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh)
      if sh is not None and self.platform != "cpu" and len(getattr(sh, "device_set", ())) > 1:
        raise TargetError(
            f"an argument of shape {tuple(x.shape)} is sharded over devices that are not "
            f"those of target {self.spec!r}; build the sharding on "
            f"jaxgreen.targets.mesh({self.spec!r}, shape, names)")
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=single)

    return jax.tree.map(one, args)

  def compile(self, fn: Callable, *args, static_argnums: int | Sequence[int] = (),
              **kwargs) -> tuple[Any, Any]:
    """Lowers and compiles ``fn`` for this target; nothing is executed.

    TPU and GPU compilations are kept in jaxgreen's compilation cache (see
    :func:`jaxgreen._src.compile_cache.cache_dir`): the same lowered program for the same
    target is compiled once.

    Returns:
      ``(lowered, compiled)``, as ``jax.jit(fn).lower(...)`` and ``.compile()`` give; on a
      cache hit ``compiled`` is a :class:`~jaxgreen._src.compile_cache.CachedExecutable`,
      which answers ``as_text()``, ``cost_analysis()`` and ``memory_analysis()`` as the
      executable did.
    """
    import jax

    static = set(static_argnums_of(static_argnums, "Target.compile"))
    placed = [a if i in static else self.place(a) for i, a in enumerate(args)]
    kwargs = {k: self.place(v) for k, v in kwargs.items()}
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn, static_argnums=tuple(static))
    with quiet_stderr():
      lowered = jitted.lower(*placed, **kwargs)
      key = cache_key(self, lowered) if self.platform != "cpu" else None
      hit = cache_get(key)
      if hit is not None:
        return lowered, hit
      try:
        compiled = lowered.compile()
      except Exception as e:  # noqa: BLE001 - XLA's errors have no common public type
        if self.platform == "cpu":
          raise
        raise TargetError(f"target {self.spec!r}: XLA could not compile the program for "
                          f"it ({_first_line(e)}). {_compile_fix(self, e)}") from e
      cache_put(key, compiled)
    return lowered, compiled

  def __str__(self) -> str:
    return self.spec


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return text[0][:300] if text else type(e).__name__


def _compile_fix(t: Target, e: BaseException) -> str:
  if t.platform == "gpu" and "PTX" in str(e):
    return ("ptxas is missing: pip install 'jaxgreen[gpu]' (it brings "
            "nvidia-cuda-nvcc-cu12)")
  return (f"Check that the program compiles for 'cpu'; if it does, the {t.platform.upper()} "
          f"compiler rejected it: compare the other targets without {t.spec!r}")


def get_target(spec: str | Target) -> Target:
  """Parses a target string; the devices are created lazily on first use.

  Args:
    spec: ``"cpu"``, ``"tpu:<chip>:<topology>"`` or ``"gpu:<chip>[x<n>]"``.

  Returns:
    A :class:`Target`.

  Raises:
    TargetError: for an unknown chip or a malformed string, naming the known ones.

  Example:
    >>> get_target("tpu:v5e:2x2x1")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    TargetError: target='tpu:v5e:2x2x1': a v5e topology has 2 dimensions, e.g. tpu:v5e:2x2
  """
  if isinstance(spec, Target):
    return spec
  if not isinstance(spec, str):
    raise TargetError(f"target={spec!r} must be a string; {_help()}")
  s = spec.strip().lower()
  if s == "cpu":
    return Target("cpu", "cpu")
  if s.startswith("tpu"):
    return _tpu_target(spec, s)
  if s.startswith("gpu"):
    return _gpu_target(spec, s)
  raise TargetError(f"target={spec!r} is not a known target; {_help()}")


def _tpu_target(spec: str, s: str) -> Target:
  m = _TPU_RE.match(s)
  if not m or m.group(1) not in TPU_CHIPS:
    raise TargetError(f"target={spec!r} is not a known TPU target; {_help()}")
  chip, topo = m.groups()
  dims = TPU_CHIPS[chip][1]
  example = "2x2" if dims == 2 else "2x2x1"
  if topo.count("x") + 1 != dims:
    raise TargetError(f"target={spec!r}: a {chip} topology has {dims} dimensions, "
                      f"e.g. tpu:{chip}:{example}")
  if any(int(d) < 1 for d in topo.split("x")):
    # libtpu divides by each dimension: a zero would kill the process (SIGFPE).
    raise TargetError(f"target={spec!r}: every topology dimension must be >= 1, "
                      f"e.g. tpu:{chip}:{example}")
  return Target(s, "tpu", chip, topo)


def _gpu_target(spec: str, s: str) -> Target:
  m = _GPU_RE.match(s)
  if not m or m.group(1) not in GPU_CHIPS:
    raise TargetError(f"target={spec!r} is not a known GPU target; {_help()}")
  chip, n = m.group(1), int(m.group(2) or 1)
  if n < 1:
    raise TargetError(f"target={spec!r}: the GPU count must be >= 1, e.g. gpu:{chip}x8")
  return Target(s if n > 1 else f"gpu:{chip}", "gpu", chip, str(n))


def mesh(target: str | Target, shape: Sequence[int] | None = None,
         names: Sequence[str] = ("x",)):
  """A ``Mesh`` over the devices of ``target``, for sharded abstract inputs.

  Args:
    target: a target string or :class:`Target`.
    shape: the mesh shape; its product must be the target's device count (default: all
      devices on one axis).
    names: one axis name per mesh dimension.

  Example:
    >>> dict(mesh("cpu", (1,), ("data",)).shape)
    {'data': 1}

  On a TPU target (needs the ``[tpu]`` extra)::

    m = jaxgreen.targets.mesh("tpu:v5e:2x2", (2, 2), ("data", "model"))
    x = jax.ShapeDtypeStruct((8, 128), jnp.float32,
                             sharding=NamedSharding(m, P("data", "model")))
  """
  import numpy as np
  from jax.sharding import Mesh

  t = get_target(target)
  devices = t.devices
  shape = tuple(shape) if shape is not None else (len(devices),)
  names = (names,) if isinstance(names, str) else tuple(names)
  if math.prod(shape) != len(devices) or len(shape) != len(names):
    raise TargetError(
        f"mesh(shape={shape}, names={names}) does not fit target {t.spec!r}: it has "
        f"{len(devices)} devices, so the shape's product must be {len(devices)} and there "
        f"must be one name per dimension")
  return Mesh(np.array(devices, dtype=object).reshape(shape), names)
