"""Native start-up noise of libtpu and the CUDA plugin, kept off the user's terminal.

This module is imported by ``import jaxgreen``, and, in an environment that opted in
with ``jaxgreen quiet-jax --install``, at the start of every Python process. So it
imports only ``os``, ``sys`` and :mod:`jaxgreen._src._hardware` (which imports ``os``) at
load; the rest of the standard library and jax's private internals
(:mod:`jaxgreen._src._compat`) are reached on first use. Whether the machine has the chips
is :mod:`jaxgreen._src._hardware`'s to say; this module only keeps their absence quiet.

Example:
  >>> import os
  >>> with quiet_stderr():
  ...   _ = os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers")
"""

from __future__ import annotations

import os
import sys

from jaxgreen._src._hardware import hardware_present

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at start-up
if TYPE_CHECKING:
  import logging
  from collections.abc import Iterator
  from contextlib import AbstractContextManager
  from typing import Any

# jax's private internals live in jaxgreen._src._compat, which imports jax: this module is
# imported before jax (see jaxgreen/__init__.py), so it reaches them on first use.
_XLA_BRIDGE_LOGGER = "jax._src.xla_bridge"  # = jaxgreen._src._compat.XLA_BRIDGE_LOGGER


def _compat() -> Any:
  from jaxgreen._src import _compat as compat

  return compat


# Lines the CUDA plugin (on a machine without a driver) and libtpu (outside a TPU VM)
# write to fd 2 while they initialise. They do not affect deviceless compilation.
_NOISE_PATTERN = (
    r"cudart_stub|Could not find cuda drivers|absl::InitializeLog|InitGoogle|"
    r"Jax plugin configuration error|could not determine TPU|TPU_WORKER_HOSTNAMES|"
    r"TPU_ACCELERATOR_TYPE|host bounds for accelerator|Source Location Trace|"
    r"libtpu_init_utils|^=+$|^\s*$|common_lib\.cc|Unable to initialize backend 'cuda'|"
    r"falling back to cpu|cuInit|CUDA_ERROR_NO_DEVICE|failed call to cuInit")
_TRACEBACK_PATTERN = (r"^(?:\s|Traceback|The above exception|During handling|"
                      r"[\w.]+(?:Error|Exception)\b|$)")
_state: dict[str, Any] = {}


def _lock() -> Any:
  """Re-entrant: a block may start a backend or a topology that quiets stderr itself."""
  if "lock" not in _state:
    import threading

    _state.setdefault("lock", threading.RLock())
  return _state["lock"]


def quiet_stderr(keep_other: bool = True) -> AbstractContextManager[None]:
  """Silences native (fd 2) initialisation noise of libtpu and the CUDA plugin.

  The C++ libraries write straight to file descriptor 2, so ``sys.stderr`` redirection
  cannot catch them: fd 2 is pointed at a temporary file for the duration of the block.
  Afterwards, lines that are not known initialisation noise are written back to stderr,
  so a real error is never hidden.

  Args:
    keep_other: write lines that are not known noise back to stderr.
  """
  import contextlib

  return contextlib.contextmanager(_quiet_stderr)(keep_other)


def _quiet_stderr(keep_other: bool) -> Iterator[None]:
  import contextlib
  import tempfile

  with _lock():
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


def _drop_noise(text: str) -> list[str]:
  """The lines of ``text`` that are not known noise (a plugin's traceback included)."""
  import re

  noise, traceback_line = re.compile(_NOISE_PATTERN), re.compile(_TRACEBACK_PATTERN)
  kept, in_plugin_traceback = [], False
  for ln in text.splitlines():
    if "Jax plugin configuration error" in ln:
      in_plugin_traceback = True  # the CUDA plugin's failed start, logged with traceback
      continue
    if in_plugin_traceback and traceback_line.match(ln):
      continue
    in_plugin_traceback = False
    if not noise.search(ln):
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


# -- from the first `import jax` on ---------------------------------------------------

def install() -> None:
  """Makes jax's start-up quiet in this process whenever it happens, without importing it.

  If jax is imported already, :func:`quiet_jax_startup` runs now; otherwise a one-shot
  import hook waits for the first ``import jax`` (the user's own, in any order with
  jaxgreen), runs it with native stderr filtered (:func:`quiet_stderr`: the CUDA plugin's
  import-time lines) and then runs :func:`quiet_jax_startup`. Run by ``import jaxgreen``;
  at interpreter start too only where the environment opted in (``jaxgreen quiet-jax
  --install``: a one-line ``.pth`` that imports jaxgreen), so that plain jax programs
  are quiet as well. Nothing happens on a machine that has the accelerators, or with
  ``JAXGREEN_QUIET=0``.
  """
  if os.environ.get("JAXGREEN_QUIET", "1") == "0":
    return
  if "jax" in sys.modules:
    quiet_jax_startup()
    return
  if hardware_present("gpu") and hardware_present("tpu"):
    return  # every plugin can start: there is no noise to keep off
  if not any(isinstance(f, _JaxImportHook) for f in sys.meta_path):
    sys.meta_path.insert(0, _JaxImportHook())


class _JaxImportHook:
  """A meta path finder that only acts on the top-level ``jax`` package, once."""

  def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
    if name != "jax":
      return None
    if self in sys.meta_path:
      sys.meta_path.remove(self)
    import importlib.util

    spec = importlib.util.find_spec(name)
    loader = getattr(spec, "loader", None)
    if loader is None or not hasattr(loader, "exec_module"):
      return spec
    run = loader.exec_module

    def quiet_exec(module: Any) -> None:
      try:
        with quiet_stderr():
          run(module)
      finally:
        if "exec_module" in vars(loader):
          del loader.exec_module  # the loader is jax's own again
      try:
        quiet_jax_startup()
      except Exception:  # noqa: BLE001 - never let quieting break the user's import
        pass

    loader.exec_module = quiet_exec
    return spec


class _PluginNoiseFilter:
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
        and not hardware_present("gpu")):
      return False
    return True


_filter = _PluginNoiseFilter()  # a logging filter: any object with .filter(record)
_started = False


def quiet_plugin_log() -> AbstractContextManager[None]:
  """While the block runs, jax's log of a CUDA plugin that cannot start is dropped."""
  import contextlib

  return contextlib.contextmanager(_quiet_plugin_log)()


def _quiet_plugin_log() -> Iterator[None]:
  import logging

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
  import dataclasses
  import functools
  import logging

  logging.getLogger(_XLA_BRIDGE_LOGGER).addFilter(_filter)
  try:
    xla_bridge = _compat().xla_bridge()

    discover = xla_bridge._discover_and_register_pjrt_plugins  # noqa: SLF001
    if not hardware_present("gpu") and not getattr(discover, "_jaxgreen_quiet", False):
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
  if hardware_present("tpu"):
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

