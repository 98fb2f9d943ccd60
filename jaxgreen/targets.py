"""Compilation targets: ``"cpu"``, ``"tpu:v5e:2x2"``, ``"gpu:h100"``, ``"gpu:h100x8"``.

A target names a machine a program is compiled for. TPU and GPU programs are compiled
*deviceless* on the machine at hand: TPU through libtpu's topology description
(``pip install 'jaxgreen[tpu]'``), GPU through the CUDA PJRT plugin and a
``GpuTargetConfigProto`` built from the chip's public figures
(``pip install 'jaxgreen[gpu]'``). Nothing is executed; the compiled executable is only
read (its optimized HLO and XLA's cost analysis).

Example:
  >>> t = jaxgreen.targets.get_target("tpu:v5e:2x2")
  >>> t.num_devices
  4
  >>> lowered, compiled = t.compile(f, x_struct)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import logging
import math
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

# jax's private internals live in jaxgreen._compat, which imports jax: this module is
# imported before jax (see jaxgreen/__init__.py), so it reaches them on first use.
_XLA_BRIDGE_LOGGER = "jax._src.xla_bridge"  # = jaxgreen._compat.XLA_BRIDGE_LOGGER


def _compat() -> Any:
  from jaxgreen import _compat as compat

  return compat


# -- quiet native stderr ------------------------------------------------------------

# Lines the CUDA plugin (on a machine without a driver) and libtpu (outside a TPU VM)
# write to fd 2 while they initialise. They do not affect deviceless compilation.
_NOISE = re.compile(
    r"cudart_stub|Could not find cuda drivers|absl::InitializeLog|InitGoogle|"
    r"Jax plugin configuration error|could not determine TPU|TPU_WORKER_HOSTNAMES|"
    r"TPU_ACCELERATOR_TYPE|host bounds for accelerator|Source Location Trace|"
    r"libtpu_init_utils|^=+$|^\s*$|common_lib\.cc|Unable to initialize backend 'cuda'|"
    r"falling back to cpu|cuInit|CUDA_ERROR_NO_DEVICE|failed call to cuInit")
# Re-entrant: a block may start a backend or a topology that quiets stderr itself.
_quiet_lock = threading.RLock()


@contextlib.contextmanager
def quiet_stderr(keep_other: bool = True) -> Iterator[None]:
  """Silences native (fd 2) initialisation noise of libtpu and the CUDA plugin.

  The C++ libraries write straight to file descriptor 2, so ``sys.stderr`` redirection
  cannot catch them: fd 2 is pointed at a temporary file for the duration of the block.
  Afterwards, lines that are not known initialisation noise are written back to stderr,
  so a real error is never hidden.

  Args:
    keep_other: write lines that are not known noise back to stderr.
  """
  with _quiet_lock:
    try:
      fd = sys.stderr.fileno() if hasattr(sys.stderr, "fileno") else 2
    except (OSError, ValueError):  # pytest capture or a non-file stderr
      fd = 2
    try:
      saved = os.dup(2)
    except OSError:
      yield
      return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
      with contextlib.suppress(Exception):
        sys.stderr.flush()
      os.dup2(tmp.fileno(), 2)
      try:
        yield
      finally:
        with contextlib.suppress(Exception):
          sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", "replace")
    if keep_other and text:
      kept = _drop_noise(text)
      if kept:
        os.write(fd, ("\n".join(kept) + "\n").encode())


_TRACEBACK_LINE = re.compile(r"^(?:\s|Traceback|The above exception|During handling|"
                             r"[\w.]+(?:Error|Exception)\b|$)")


def _drop_noise(text: str) -> list[str]:
  """The lines of ``text`` that are not known noise (a plugin's traceback included)."""
  kept, in_plugin_traceback = [], False
  for ln in text.splitlines():
    if "Jax plugin configuration error" in ln:
      in_plugin_traceback = True  # the CUDA plugin's failed start, logged with traceback
      continue
    if in_plugin_traceback and _TRACEBACK_LINE.match(ln):
      continue
    in_plugin_traceback = False
    if not _NOISE.search(ln):
      kept.append(ln)
  return kept


def import_jax_quietly() -> None:
  """Imports jax quietly and keeps the plugins' start-up noise off the terminal later.

  The CUDA plugin's import-time messages are silenced when jax is not imported yet
  (``import jaxgreen`` before ``jax``); in every case :func:`quiet_jax_startup` is run.
  """
  if "jax" not in sys.modules:
    with quiet_stderr():
      import jax  # noqa: F401
  quiet_jax_startup()


class _PluginNoiseFilter(logging.Filter):
  """Drops jax's log records of plugins that cannot start for want of their hardware.

  On a machine without an NVIDIA driver, jax's plugin discovery logs the CUDA plugin's
  failed version check with a traceback ("Jax plugin configuration error ... Unable to
  load CUDA"); the plugin is then simply not used, as jax alone would do. On a machine
  with the driver nothing is dropped.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    try:
      msg = record.getMessage()
    except Exception:  # noqa: BLE001 - a record that cannot format is not ours to judge
      return True
    if ("Jax plugin configuration error" in msg and "cuda" in msg
        and not _hardware_present("gpu")):
      return False
    return True


_filter = _PluginNoiseFilter()
_started = False


@contextlib.contextmanager
def _quiet_plugin_log() -> Iterator[None]:
  """While the block runs, jax's log of a CUDA plugin that cannot start is dropped."""
  logger = logging.getLogger(_XLA_BRIDGE_LOGGER)
  if _filter in logger.filters:
    yield
    return
  logger.addFilter(_filter)
  try:
    yield
  finally:
    logger.removeFilter(_filter)


def quiet_jax_startup() -> None:
  """Keeps libtpu's and the CUDA plugin's start-up noise off the terminal for good.

  On a machine without an NVIDIA driver, the CUDA plugin's failed start is not logged;
  on a machine without TPU chips, the output libtpu writes while jax tries (and fails)
  to start a TPU backend is swallowed (other lines pass through). Neither changes which
  backend jax starts: the same factories run, in the same order, with the same result.
  """
  global _started
  if _started:
    return
  _started = True
  logging.getLogger(_XLA_BRIDGE_LOGGER).addFilter(_filter)
  try:
    xla_bridge = _compat().xla_bridge()

    discover = xla_bridge._discover_and_register_pjrt_plugins  # noqa: SLF001
    if not _hardware_present("gpu") and not getattr(discover, "_jaxgreen_quiet", False):
      # Loading the CUDA plugin (when jax's platforms exclude cuda) prints cudart_stub
      # lines on a machine without a driver.
      @functools.wraps(discover)
      def quiet_discover():
        with quiet_stderr():
          return discover()

      quiet_discover._jaxgreen_quiet = True  # type: ignore[attr-defined]
      xla_bridge._discover_and_register_pjrt_plugins = quiet_discover  # noqa: SLF001
  except Exception:  # noqa: BLE001 - jax internals moved: stay out of the way
    pass
  if _hardware_present("tpu"):
    return
  try:
    xla_bridge = _compat().xla_bridge()

    reg = xla_bridge._backend_factories.get("tpu")  # noqa: SLF001
    if reg is None or xla_bridge._backends:  # noqa: SLF001 - too late, or no factory
      return
    factory = reg.factory

    @functools.wraps(factory)
    def quiet_factory(*a, **kw):
      with quiet_stderr():
        return factory(*a, **kw)

    xla_bridge._backend_factories["tpu"] = dataclasses.replace(  # noqa: SLF001
        reg, factory=quiet_factory)
  except Exception:  # noqa: BLE001 - jax internals moved: stay out of the way
    return


# -- chips --------------------------------------------------------------------------

# TPU chips libtpu's deviceless topologies accept: name -> (topology prefix, dims).
# A v5e/v6e slice is 2-D (e.g. 2x2, 16x16); v4/v5p slices are 3-D (e.g. 2x2x1, 8x8x8).
TPU_CHIPS: dict[str, tuple[str, int]] = {
    "v4": ("v4", 3), "v5e": ("v5e", 2), "v5p": ("v5p", 3), "v6e": ("v6e", 2),
}


@dataclasses.dataclass(frozen=True)
class GpuChip:
  """Public figures of one NVIDIA GPU, as XLA's GpuTargetConfigProto wants them.

  Attributes:
    description: the device name the driver would report.
    cc: CUDA compute capability (major, minor).
    sms: streaming multiprocessors.
    clock_ghz: boost clock.
    memory_bytes: device memory.
    bandwidth: memory bandwidth in bytes/s.
    l2_bytes: L2 cache size.
    smem_per_sm: shared memory per SM, bytes.
    smem_optin: shared memory a block may opt into, bytes.
    fp32_per_sm: FP32 lanes per SM.
  """

  description: str
  cc: tuple[int, int]
  sms: int
  clock_ghz: float
  memory_bytes: int
  bandwidth: int
  l2_bytes: int
  smem_per_sm: int
  smem_optin: int
  fp32_per_sm: int = 128


_GIB = 1024**3
_MIB = 1024**2
_KIB = 1024

GPU_CHIPS: dict[str, GpuChip] = {
    # NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020), Table 3 and the A100
    # SXM4 80GB datasheet: GA100, 108 SMs, 1410 MHz boost, 2039 GB/s, 40 MB L2,
    # 164 KB shared memory per SM (163 KB per block opt-in), 64 FP32 lanes per SM.
    "a100": GpuChip("NVIDIA A100-SXM4-80GB", (8, 0), 108, 1.41, 80 * _GIB, 2_039_000_000_000,
                    40 * _MIB, 167_936, 166_912, 64),
    # NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022) and the H100 SXM5
    # datasheet: 132 SMs, 1980 MHz boost, 80 GB HBM3 at 3.35 TB/s, 50 MB L2, 228 KB
    # shared memory per SM (227 KB per block opt-in), 128 FP32 lanes per SM.
    "h100": GpuChip("NVIDIA H100 80GB HBM3", (9, 0), 132, 1.98, 84_942_979_072,
                    3_352_320_000_000, 50 * _MIB, 233_472, 232_448),
    # NVIDIA H200 datasheet (2024): the H100 SXM die with 141 GB HBM3e at 4.8 TB/s.
    "h200": GpuChip("NVIDIA H200", (9, 0), 132, 1.98, 141 * 10**9, 4_800_000_000_000,
                    50 * _MIB, 233_472, 232_448),
    # NVIDIA Blackwell architecture technical brief and DGX B200 datasheet (2024):
    # 148 SMs, 180 GB HBM3e at 8 TB/s per GPU, 126 MB L2 (CUDA 12.8 deviceQuery),
    # compute capability 10.0, Hopper-sized shared memory.
    "b200": GpuChip("NVIDIA B200", (10, 0), 148, 1.965, 180 * 10**9, 8_000_000_000_000,
                    126 * _MIB, 233_472, 232_448),
    # NVIDIA L4 datasheet (2023) / Ada tuning guide: 58 SMs, 2040 MHz boost, 24 GB GDDR6
    # at 300 GB/s, 48 MB L2, 100 KB shared memory per SM (99 KB per block opt-in).
    "l4": GpuChip("NVIDIA L4", (8, 9), 58, 2.04, 24 * _GIB, 300_000_000_000, 48 * _MIB,
                  102_400, 101_376),
}


def gpu_target_config(chip: str | GpuChip) -> str:
  """The ``GpuTargetConfigProto`` text for ``chip`` (only fields jaxlib 0.10.2 knows).

  Args:
    chip: a key of :data:`GPU_CHIPS` or a :class:`GpuChip`.

  Returns:
    Protobuf text format, for ``topologies.get_topology_desc(target_config=...)``.
  """
  c = GPU_CHIPS[chip] if isinstance(chip, str) else chip
  major, minor = c.cc
  cc = f"major: {major}" + (f" minor: {minor}" if minor else "")
  return (
      f"gpu_device_info {{ cuda_compute_capability {{ {cc} }} core_count: {c.sms} "
      f"threads_per_warp: 32 threads_per_block_limit: 1024 threads_per_core_limit: "
      f"{1536 if c.cc == (8, 9) else 2048} "
      f"shared_memory_per_block: 49152 shared_memory_per_block_optin: {c.smem_optin} "
      f"shared_memory_per_core: {c.smem_per_sm} memory_bandwidth: {c.bandwidth} "
      f"l2_cache_size: {c.l2_bytes} clock_rate_ghz: {c.clock_ghz} "
      f"device_memory_size: {c.memory_bytes} fpus_per_core: {c.fp32_per_sm} "
      f"registers_per_core_limit: 65536 registers_per_block_limit: 65536 "
      f"block_dim_limit_x: 2147483647 block_dim_limit_y: 65535 block_dim_limit_z: 65535 "
      f"thread_dim_limit_x: 1024 thread_dim_limit_y: 1024 thread_dim_limit_z: 64 }} "
      f'platform_name: "CUDA" dnn_version_info {{ major: 9 minor: 8 }} '
      f'device_description_str: "{c.description}"')


# -- targets ------------------------------------------------------------------------

_TPU_RE = re.compile(r"^tpu:([a-z0-9]+):(\d+(?:x\d+)*)$")
_GPU_RE = re.compile(r"^gpu:([a-z0-9]+?)(?:x(\d+))?$")


class TargetError(ValueError):
  """A target string that cannot be compiled for, with the fix in the message."""


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
    return list(_devices(self.spec))

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
    from jax.sharding import SingleDeviceSharding

    devices = self.devices
    own = {id(d) for d in devices}
    single = SingleDeviceSharding(devices[0])

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
    :func:`cache_dir`): the same lowered program for the same target is compiled once.

    Returns:
      ``(lowered, compiled)``, as ``jax.jit(fn).lower(...)`` and ``.compile()`` give; on a
      cache hit ``compiled`` is a :class:`CachedExecutable`, which answers ``as_text()``,
      ``cost_analysis()`` and ``memory_analysis()`` as the executable did.
    """
    import jax

    if isinstance(static_argnums, int):
      static_argnums = (static_argnums,)
    static = set(static_argnums)
    placed = [a if i in static else self.place(a) for i, a in enumerate(args)]
    kwargs = {k: self.place(v) for k, v in kwargs.items()}
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn, static_argnums=tuple(static))
    with quiet_stderr():
      lowered = jitted.lower(*placed, **kwargs)
      key = _cache_key(self, lowered) if self.platform != "cpu" else None
      hit = _cache_get(key)
      if hit is not None:
        return lowered, hit
      try:
        compiled = lowered.compile()
      except Exception as e:  # noqa: BLE001 - XLA's errors have no common public type
        if self.platform == "cpu":
          raise
        raise TargetError(f"target {self.spec!r}: XLA could not compile the program for "
                          f"it ({_first_line(e)}). {_compile_fix(self, e)}") from e
      _cache_put(key, compiled)
    return lowered, compiled

  def __str__(self) -> str:
    return self.spec


# -- progress -------------------------------------------------------------------------

def progress_line(stream: Any = None) -> tuple[Callable[[str, int, int], None],
                                                Callable[[], None]]:
  """A ``(report, done)`` pair for the ``progress=`` argument of compare and reconcile.

  ``report(target, i, n)`` is called before target ``i`` of ``n``; on a terminal one
  status line is kept up to date, once a second while a target compiles:
  ``compiling for tpu:v5e:2x2 (2/3, 14 s) - cpu 0.4 s``, the time of each finished
  target after the dash. ``done()`` clears the line. When ``stream`` is not a terminal
  (a pipe, a CI log) both do nothing.

  Args:
    stream: where to write (default ``sys.stderr``).
  """
  import time

  out = stream if stream is not None else sys.stderr
  try:
    tty = bool(out.isatty())
  except (AttributeError, ValueError, OSError):
    tty = False
  lock = threading.Lock()
  stop = threading.Event()
  state: dict[str, Any] = {"current": None, "since": 0.0, "done": [], "i": 0, "n": 0,
                           "ticker": None}

  def finish_current() -> None:
    if state["current"] is not None:
      state["done"].append(f"{state['current']} {time.perf_counter() - state['since']:.1f} s")
      state["current"] = None

  def draw() -> None:
    with lock:
      if state["current"] is None:
        return
      msg = (f"compiling for {state['current']} ({state['i'] + 1}/{state['n']}, "
             f"{time.perf_counter() - state['since']:.0f} s)")
      if state["done"]:
        msg += " - " + ", ".join(state["done"][-3:])
      with contextlib.suppress(Exception):
        out.write("\r\033[K" + msg)
        out.flush()

  def tick() -> None:
    while not stop.wait(1.0):
      draw()

  def report(target: str, i: int, n: int) -> None:
    with lock:
      finish_current()
      state.update(current=target, since=time.perf_counter(), i=i, n=n)
    if not tty:
      return
    draw()
    if state["ticker"] is None:
      state["ticker"] = threading.Thread(target=tick, daemon=True, name="jaxgreen-progress")
      state["ticker"].start()

  def done() -> None:
    stop.set()
    if state["ticker"] is not None:
      state["ticker"].join(timeout=2)
    with lock:
      finish_current()
    if tty:
      with contextlib.suppress(Exception):
        out.write("\r\033[K")
        out.flush()

  return report, done


def progress_for(progress: Callable[[str, int, int], None] | bool | None
                 ) -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
  """``(report, done)`` for a ``progress=`` argument of compare or reconcile.

  None: a status line on stderr when it is a terminal (see :func:`progress_line`),
  nothing otherwise; False: nothing; a callable: called as ``progress(target, i, n)``.
  """
  if progress is None or progress is True:
    return progress_line(sys.stderr)
  if progress is False:
    return (lambda target, i, n: None), (lambda: None)
  if not callable(progress):
    raise TypeError(f"progress={progress!r} must be None, a bool or a callable "
                    f"progress(target, i, n)")
  return progress, (lambda: None)


def each_target(what: str, targets: Sequence[Target], progress, one: Callable[[Target], Any]
                ) -> tuple[list, dict[str, str]]:
  """``one(t)`` for each target, with a progress line: ``(results, unavailable)``.

  A target that cannot be compiled (:class:`TargetError`) is reported in ``unavailable``
  with its reason and fix and spares the others; when none could, ``what`` raises.
  """
  report, done = progress_for(progress)
  results, unavailable = [], {}
  try:
    for i, t in enumerate(targets):
      report(t.spec, i, len(targets))
      try:
        results.append(one(t))
      except TargetError as e:
        unavailable[t.spec] = str(e)
  finally:
    done()
  if not results:
    raise TargetError(f"{what}: no target could be compiled: " + "; ".join(unavailable.values()))
  return results, unavailable


@contextlib.contextmanager
def status(label: str, stream: Any = None) -> Iterator[None]:
  """A status line ``label (12 s)`` kept up to date on a terminal while the block runs.

  For one long step (compiling a pod-sized program); quiet when ``stream`` (default
  ``sys.stderr``) is not a terminal.
  """
  report, done = progress_line(stream)
  report(label, 0, 1)
  try:
    yield
  finally:
    done()


# -- compilation cache --------------------------------------------------------------

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


def _versions(t: Target) -> dict[str, str]:
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


def _cache_key(t: Target, lowered: Any) -> str | None:
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
          "devices": [str(d) for d in _devices(t.spec)],
          "env": {k: os.environ.get(k, "") for k in ("XLA_FLAGS", "LIBTPU_INIT_ARGS")}}
  h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
  h.update(text.encode())
  return h.hexdigest()


def _cache_path(key: str) -> str:
  return os.path.join(cache_dir() or "", key[:2], key + ".json.gz")


def _cache_get(key: str | None) -> CachedExecutable | None:
  if key is None:
    return None
  import gzip
  import json

  try:
    with gzip.open(_cache_path(key), "rt", encoding="utf-8") as f:
      return CachedExecutable(json.load(f))
  except (OSError, ValueError, EOFError):  # absent, or a damaged entry: compile again
    return None


def _cache_put(key: str | None, compiled: Any) -> None:
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
    entry["module_cost"] = _plain_cost(_call(lambda: _module_cost(compiled)))
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


def _module_cost(compiled: Any) -> Any:
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
  """
  if isinstance(spec, Target):
    return spec
  if not isinstance(spec, str):
    raise TargetError(f"target={spec!r} must be a string; {_help()}")
  s = spec.strip().lower()
  if s == "cpu":
    return Target("cpu", "cpu")
  if s.startswith("tpu"):
    m = _TPU_RE.match(s)
    if not m or m.group(1) not in TPU_CHIPS:
      raise TargetError(f"target={spec!r} is not a known TPU target; {_help()}")
    chip, topo = m.groups()
    dims = TPU_CHIPS[chip][1]
    if topo.count("x") + 1 != dims:
      example = "2x2" if dims == 2 else "2x2x1"
      raise TargetError(f"target={spec!r}: a {chip} topology has {dims} dimensions, "
                        f"e.g. tpu:{chip}:{example}")
    if any(int(d) < 1 for d in topo.split("x")):
      # libtpu divides by each dimension: a zero would kill the process (SIGFPE).
      example = "2x2" if dims == 2 else "2x2x1"
      raise TargetError(f"target={spec!r}: every topology dimension must be >= 1, "
                        f"e.g. tpu:{chip}:{example}")
    return Target(s, "tpu", chip, topo)
  if s.startswith("gpu"):
    m = _GPU_RE.match(s)
    if not m or m.group(1) not in GPU_CHIPS:
      raise TargetError(f"target={spec!r} is not a known GPU target; {_help()}")
    chip, n = m.group(1), int(m.group(2) or 1)
    if n < 1:
      raise TargetError(f"target={spec!r}: the GPU count must be >= 1, e.g. gpu:{chip}x8")
    return Target(s if n > 1 else f"gpu:{chip}", "gpu", chip, str(n))
  raise TargetError(f"target={spec!r} is not a known target; {_help()}")


def mesh(target: str | Target, shape: Sequence[int] | None = None,
         names: Sequence[str] = ("x",)):
  """A ``Mesh`` over the devices of ``target``, for sharded abstract inputs.

  Args:
    target: a target string or :class:`Target`.
    shape: the mesh shape; its product must be the target's device count (default: all
      devices on one axis).
    names: one axis name per mesh dimension.

  Example:
    >>> m = jaxgreen.targets.mesh("tpu:v5e:2x2", (2, 2), ("data", "model"))
    >>> x = jax.ShapeDtypeStruct((8, 128), jnp.float32,
    ...                          sharding=NamedSharding(m, P("data", "model")))
  """
  import math

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


def start_devices(targets: Sequence[Target]) -> None:
  """Creates the devices of every target that can have them, GPU targets first.

  A target whose devices cannot be created (a missing extra, a slice libtpu rejects)
  raises its :class:`TargetError` when it is used, not here.
  """
  for t in sorted(targets, key=lambda t: t.platform != "gpu"):
    with contextlib.suppress(TargetError):  # reported when the target itself is used
      _devices(t.spec)


# -- device creation ----------------------------------------------------------------

@functools.cache
def _devices(spec: str) -> tuple:
  t = get_target(spec)
  if t.platform == "cpu":
    import jax

    # Starting the backends loads every installed PJRT plugin; the CUDA one complains
    # on a machine without a driver.
    with quiet_stderr():
      return tuple(jax.devices("cpu"))
  if t.platform == "tpu":
    return _tpu_devices(t)
  return _gpu_devices(t)


def _has_local_hardware(platform: str) -> bool:
  """Whether this machine has accelerators of ``platform``, checked without starting jax.

  NVIDIA's driver exposes /proc/driver/nvidia and /dev/nvidia<N>; a TPU VM exposes its
  chips as /dev/accel<N> (v4, v5e, v6e) or /dev/vfio/<N> (v5p). Set
  JAXGREEN_DEVICELESS=1 to compile deviceless even on such a machine.
  """
  if os.environ.get("JAXGREEN_DEVICELESS", "").lower() in ("1", "true", "yes"):
    return False
  return _hardware_present(platform)


def _hardware_present(platform: str) -> bool:
  """Whether the machine has ``platform``'s accelerators, whatever JAXGREEN_DEVICELESS."""
  if platform == "gpu":
    return os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*"))
  return bool(glob.glob("/dev/accel[0-9]*")) or bool(glob.glob("/dev/vfio/[0-9]*"))


def _local_devices(t: Target, wanted: int) -> tuple | None:
  """The machine's own devices for ``t`` when it has the target's chip, else None.

  Used only when the chip matches (device_kind names it, e.g. "NVIDIA H100 80GB HBM3"
  for gpu:h100, "TPU v5 lite" for tpu:v5e) and the machine has at least ``wanted``
  devices (the first ``wanted`` are used); otherwise the target is compiled deviceless.
  """
  if not _has_local_hardware(t.platform):
    return None
  import jax

  try:
    with quiet_stderr():
      devs = jax.devices(t.platform)
  except RuntimeError:  # the platform did not start: no usable local device
    return None
  from jaxgreen.chips import chip_of_device_kind

  if not devs or chip_of_device_kind(devs[0].device_kind) != t.chip:
    return None
  return tuple(devs[:wanted]) if len(devs) >= wanted else None


def _tpu_devices(t: Target) -> tuple:
  dims = [int(d) for d in t.topology.split("x") if d.isdigit()]
  local = _local_devices(t, math.prod(dims))
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


def _gpu_devices(t: Target) -> tuple:
  import importlib.util

  local = _local_devices(t, int(t.topology or 1))
  if local is not None:
    return local

  if (importlib.util.find_spec("jax_cuda12_plugin") is None
      or importlib.util.find_spec("jax_plugins.xla_cuda12") is None):
    raise TargetError(f"target {t.spec!r} needs the CUDA PJRT plugin and ptxas to compile "
                      f"for GPU without a GPU: pip install 'jaxgreen[gpu]'")
  from jax.experimental import topologies

  try:
    with quiet_stderr():
      _register_cuda_plugin()
      topo = topologies.get_topology_desc(platform="cuda",
                                          target_config=gpu_target_config(t.chip),
                                          topology=f"1x1x{t.topology}")
  except (NotImplementedError, RuntimeError) as e:
    raise TargetError(f"target {t.spec!r}: the CUDA plugin could not describe a deviceless "
                      f"topology ({e}); reinstall it with pip install --force-reinstall "
                      f"'jaxgreen[gpu]'") from None
  return tuple(topo.devices)


_cuda_lock = threading.Lock()


def _register_cuda_plugin() -> None:
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
    with _quiet_plugin_log():
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
