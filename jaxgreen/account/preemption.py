"""Preemption: on SIGTERM, commit every open trial and end it as ``preempted``.

Slurm, Kubernetes, ``docker stop`` and spot/TPU preemption send SIGTERM before they
kill a process. :func:`watch` installs (once, from the main thread) a handler that
asks every watched experiment to end its open trials as ``preempted`` (error
``SIGTERM``) and write them, then does what the process did before: the previous Python
handler runs, or the default kills it.

Ctrl-C (SIGINT) keeps Python's behaviour, ``KeyboardInterrupt``, with one difference
(:func:`defer_interrupts`): one landing inside a tracked step's bookkeeping (a few
microseconds) is raised just after it, so the step that ran is recorded exactly once.
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


_interrupt_code: set[CodeType] = set()
_interrupts_deferred = False


def defer_interrupts(critical: Iterable[CodeType]) -> None:
  """Raises ``KeyboardInterrupt`` just after, not inside, the functions ``critical``.

  Installed from the main thread only while SIGINT has Python's own handler (a handler
  of the user's is left alone). Only code that runs for microseconds belongs in
  ``critical``: a ledger transaction is safe to interrupt (it rolls back, and rows are
  written again idempotently), so Ctrl-C never waits for a busy ledger.
  """
  global _interrupts_deferred
  _interrupt_code.update(critical)
  if _interrupts_deferred or threading.current_thread() is not threading.main_thread():
    return
  if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
    return
  signal.signal(signal.SIGINT, _on_sigint)
  _interrupts_deferred = True


def _inside(frame: FrameType | None, code: set[CodeType]) -> bool:
  f = frame
  while f is not None:
    if f.f_code in code:
      return True
    f = f.f_back
  return False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
  if _inside(frame, _interrupt_code):
    threading.Timer(0.005, os.kill, (os.getpid(), signum)).start()
    return
  signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt, as without jaxgreen


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
  if _inside(frame, _critical_code):
    # Interrupted inside jaxgreen's own bookkeeping or a ledger transaction: let it
    # finish (microseconds) and take the signal again just after.
    threading.Timer(0.005, os.kill, (os.getpid(), signum)).start()
    return
  for exp in list(_WATCHED):
    exp._preempt(PREEMPT_TIMEOUT_S)
  previous = _previous
  if callable(previous):
    previous(signum, frame)
    return
  signal.signal(signum, signal.SIG_DFL)  # die of the signal, as without jaxgreen
  os.kill(os.getpid(), signum)
