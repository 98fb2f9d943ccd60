"""What jaxgreen reads of a compiled executable, and the on-disk cache that keeps it.

Compiling a pod-sized program for a TPU or GPU target takes minutes; the compiled HLO
text, XLA's cost and memory analyses and the device count are all jaxgreen reads of the
executable, so they are kept (gzipped JSON) under :func:`cache_dir` and a second
compilation of the same lowered program for the same target is a file read. Functions
here take a :class:`jaxgreen.targets.Target` (its ``spec``, ``platform`` and ``chip``).

Example:
  >>> entry = CachedExecutable({"text": "HloModule m", "program_devices": 4})
  >>> entry.as_text(), executable_devices(entry)
  ('HloModule m', 4)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import Any

from jaxgreen._src.devices import devices_of
from jaxgreen.chips import gpu_target_config


def _compat() -> Any:
  from jaxgreen._src import _compat as compat

  return compat


_CACHE_VERSION = 1


def cache_dir() -> str | None:
  """Where compiled TPU/GPU programs are kept, or None when the cache is off.

  ``$JAXGREEN_CACHE_DIR`` if set (an empty value, or ``JAXGREEN_CACHE=0``, turns the
  cache off), else ``$XDG_CACHE_HOME/jaxgreen/compiled``, else
  ``~/.cache/jaxgreen/compiled``. Entries are keyed on the lowered program, the target
  (with the chip figures jaxgreen compiles GPUs for), the jax, jaxlib, libtpu and CUDA
  plugin versions and the XLA flags in the environment; delete the folder to clear it.
  """
  if os.environ.get("JAXGREEN_CACHE", "1").lower() in ("0", "false", "no", "off"):
    return None
  d = os.environ.get("JAXGREEN_CACHE_DIR")
  if d is not None:
    return d or None
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "jaxgreen", "compiled")


class CachedExecutable:
  """What jaxgreen reads of a compiled executable, as kept in the compilation cache.

  Attributes:
    program_devices: devices the executable runs on.
    module_cost: XLA's HloCostAnalysis of the compiled module where ``cost_analysis()``
      is None (deviceless GPU executables), else None.
  """

  def __init__(self, entry: dict[str, Any]):
    self._entry = entry
    self.program_devices = int(entry.get("program_devices") or 1)
    self.module_cost = entry.get("module_cost")

  def as_text(self) -> str:
    return self._entry["text"]

  def cost_analysis(self) -> dict[str, float] | None:
    return self._entry.get("cost")

  def memory_analysis(self) -> Any:
    m = self._entry.get("memory")
    return None if m is None else type("MemoryAnalysis", (), dict(m))()


def _versions(t: Any) -> dict[str, str]:
  from importlib import metadata

  out = {}
  names = ["jax", "jaxlib"] + (["libtpu"] if t.platform == "tpu" else
                               ["jax-cuda12-plugin", "jax-cuda12-pjrt"])
  for name in names:
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      out[name] = ""
  return out


def cache_key(t: Any, lowered: Any) -> str | None:
  """The cache key of ``lowered`` compiled for target ``t``; None when the cache is off."""
  if cache_dir() is None:
    return None
  import hashlib
  import json

  try:
    text = lowered.as_text()
  except Exception:  # noqa: BLE001 - a program that cannot print is compiled every time
    return None
  meta = {"v": _CACHE_VERSION, "target": t.spec, "versions": _versions(t),
          "gpu": gpu_target_config(t.chip) if t.platform == "gpu" else "",
          "devices": [str(d) for d in devices_of(t)],
          "env": {k: os.environ.get(k, "") for k in ("XLA_FLAGS", "LIBTPU_INIT_ARGS")}}
  h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
  h.update(text.encode())
  return h.hexdigest()


def _cache_path(key: str) -> str:
  return os.path.join(cache_dir() or "", key[:2], key + ".json.gz")


def cache_get(key: str | None) -> CachedExecutable | None:
  """The cached executable under ``key``, or None (absent, damaged, or no key)."""
  if key is None:
    return None
  import gzip
  import json

  try:
    with gzip.open(_cache_path(key), "rt", encoding="utf-8") as f:
      return CachedExecutable(json.load(f))
  except (OSError, ValueError, EOFError):  # absent, or a damaged entry: compile again
    return None


def cache_put(key: str | None, compiled: Any) -> None:
  """Keeps what jaxgreen reads of ``compiled`` under ``key`` (best effort)."""
  if key is None:
    return
  import gzip
  import json

  try:
    entry = {"text": compiled.as_text(), "cost": _plain_cost(_call(compiled.cost_analysis)),
             "module_cost": None, "memory": None,
             "program_devices": executable_devices(compiled)}
  except Exception:  # noqa: BLE001 - an executable jaxgreen cannot read is not kept
    return
  if entry["cost"] is None:
    entry["module_cost"] = _plain_cost(_call(lambda: module_cost(compiled)))
  ma = _call(compiled.memory_analysis)
  if isinstance(ma, list | tuple):
    ma = ma[0] if ma else None
  if ma is not None:
    entry["memory"] = {k: getattr(ma, k) for k in dir(ma)
                       if k.endswith("_in_bytes") and isinstance(getattr(ma, k, None), int)}
  path = _cache_path(key)
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as f:
      f.write(json.dumps(entry).encode())
    os.replace(tmp, path)
  except OSError:  # a read-only or full disk: the cache is an optimisation only
    with contextlib.suppress(OSError, UnboundLocalError):
      os.unlink(tmp)


def _call(f: Callable[[], Any]) -> Any:
  try:
    return f()
  except Exception:  # noqa: BLE001 - best effort, as for a fresh executable
    return None


def _plain_cost(ca: Any) -> dict[str, float] | None:
  if isinstance(ca, list | tuple):
    ca = ca[0] if ca else None
  if not isinstance(ca, dict):
    return None
  return {str(k): float(v) for k, v in ca.items() if isinstance(v, int | float)}


def module_cost(compiled: Any) -> Any:
  """XLA's HloCostAnalysis of the compiled module (with the CPU client)."""
  module = compiled.runtime_executable().hlo_modules()[0]
  return _compat().hlo_module_cost_analysis(module)


def executable_devices(compiled: Any) -> int:
  """Devices ``compiled`` runs on (1 unless its inputs were sharded over a mesh)."""
  n = getattr(compiled, "program_devices", None)
  if n is not None:
    return int(n)
  import jax

  try:
    shardings = jax.tree.leaves((compiled.input_shardings, compiled.output_shardings),
                                is_leaf=lambda x: hasattr(x, "device_set"))
    n = max((len(s.device_set) for s in shardings if hasattr(s, "device_set")), default=1)
    return max(1, n)
  except Exception:  # noqa: BLE001
    return 1
