"""Preemption: on SIGTERM, commit every open trial and end it as ``stopped``.

Slurm, Kubernetes, ``docker stop`` and spot/TPU preemption send SIGTERM before they
kill a process. :func:`watch` installs (once, from the main thread) a handler that
asks every watched experiment to end its open trials as ``stopped`` ("preempted:
SIGTERM") and write them, then does what the process did before: the previous Python
handler runs, or the default kills it.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from collections.abc import Iterable
from types import CodeType, FrameType
from typing import Any, Protocol

# On SIGTERM the open trials are written within this time (preemption grace periods are
# typically 30 s or more).
PREEMPT_TIMEOUT_S = 10.0


class Preemptible(Protocol):
  """What the handler asks of an experiment (a :class:`jaxgreen.Experiment`)."""

  def _preempt(self, timeout: float) -> None: ...


_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()
_previous: Any = None
_installed = False
_critical_code: set[CodeType] = set()  # code objects a handler must not interrupt mid-way


def watch(experiment: Preemptible, critical: Iterable[CodeType]) -> None:
  """Ends ``experiment``'s open trials on SIGTERM (it is held weakly).

  Args:
    experiment: the experiment to stop on SIGTERM.
    critical: code of the functions that keep jaxgreen's books or hold a ledger
      transaction: a signal landing inside one is taken again just after it.
  """
  _WATCHED.add(experiment)
  _critical_code.update(critical)
  _install()


def _install() -> None:
  global _previous, _installed
  if _installed or threading.current_thread() is not threading.main_thread():
    return
  try:
    previous = signal.getsignal(signal.SIGTERM)
  except (ValueError, AttributeError):  # pragma: no cover - no SIGTERM on this platform
    return
  if previous is signal.SIG_IGN or previous is None:  # ignored, or a C handler: keep it
    return
  signal.signal(signal.SIGTERM, _on_sigterm)
  _previous, _installed = previous, True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
  f = frame
  while f is not None:
    if f.f_code in _critical_code:
      # Interrupted inside jaxgreen's own bookkeeping or a ledger transaction: let it
      # finish (microseconds) and take the signal again just after.
      threading.Timer(0.005, os.kill, (os.getpid(), signum)).start()
      return
    f = f.f_back
  for exp in list(_WATCHED):
    exp._preempt(PREEMPT_TIMEOUT_S)
  previous = _previous
  if callable(previous):
    previous(signum, frame)
    return
  signal.signal(signum, signal.SIG_DFL)  # die of the signal, as without jaxgreen
  os.kill(os.getpid(), signum)
