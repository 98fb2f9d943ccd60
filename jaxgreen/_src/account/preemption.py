"""Preemption: on SIGTERM, commit every open trial and end it as ``preempted``.

Slurm, Kubernetes, ``docker stop`` and spot/TPU preemption send SIGTERM before they
kill a process. :func:`watch` installs (once, from the main thread) a handler that
asks every watched experiment to end its open trials as ``preempted`` (error
``SIGTERM``) and write them, then does what the process did before: the previous Python
handler runs, or the default kills it.

Ctrl-C (SIGINT) keeps Python's behaviour, ``KeyboardInterrupt``, with one difference
(:func:`defer_interrupts`): one landing inside a tracked step's bookkeeping (a few
microseconds) is raised just after it, so the step that ran is recorded exactly once.

A deferral is bounded: a signal is taken again every few milliseconds, and once
:data:`MAX_DEFER_S` has passed since it arrived it is acted on wherever it lands. A
ledger write is never part of a deferred section (it is safe to interrupt: it rolls
back, and its rows are written again idempotently), so Ctrl-C stops training within
a fraction of a second however busy or slow the ledger is. Inside a call to a ledger
server, Ctrl-C closes that connection at once rather than waiting for the server to
cancel the statement (it reconnects at the next write).
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
import weakref
from collections.abc import Iterable
from types import CodeType, FrameType
from typing import Any, Protocol

# On SIGTERM the open trials are written within this time (preemption grace periods are
# typically 30 s or more).
PREEMPT_TIMEOUT_S = 10.0
# A signal landing in a deferred section is acted on at most this long after it arrived.
MAX_DEFER_S = 0.25
# A deferred signal is sent again after this long.
_RETRY_S = 0.005


class Preemptible(Protocol):
  """What the handler asks of an experiment (a :class:`jaxgreen.Experiment`)."""

  def _preempt(self, timeout: float) -> None: ...


_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()
_previous: Any = None
_installed = False
_critical_code: set[CodeType] = set()  # code objects a handler must not interrupt mid-way
# Code that may wait (a ledger write) and is safe to interrupt: the walk up the stack
# stops there, so a deferred section that calls it is not deferred while it waits.
_interruptible_code: set[CodeType] = set()
# Code of a blocking call to a ledger server: Ctrl-C inside it raises ``abort``.
_server_code: set[CodeType] = set()
_server_abort: type[BaseException] | None = None
_deferred_since: dict[int, float] = {}  # signal -> when its deferral began (monotonic)
_interrupted_at = float("-inf")  # when Ctrl-C last reached the handler (monotonic)


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


def interruptible(code: Iterable[CodeType]) -> None:
  """Marks ``code`` (functions that wait on a ledger) as never deferred: a signal landing
  in it, or below it, is acted on at once even when a deferred section called it."""
  _interruptible_code.update(code)


def server_calls(code: Iterable[CodeType], abort: type[BaseException]) -> None:
  """Ctrl-C landing inside ``code`` (a blocking call to a ledger server) raises ``abort``,
  which that code turns into ``KeyboardInterrupt`` after closing its connection."""
  global _server_abort
  _server_code.update(code)
  _server_abort = abort


def interrupted_since(t: float) -> bool:
  """Whether Ctrl-C reached this process (through :func:`defer_interrupts`' handler)
  since ``time.monotonic()`` was ``t``."""
  return _interrupted_at >= t


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
  _resender()
  signal.signal(signal.SIGINT, _on_sigint)
  _interrupts_deferred = True


def _inside(frame: FrameType | None, code: set[CodeType]) -> bool:
  """Whether ``frame`` runs inside one of ``code``, not below an interruptible call."""
  f = frame
  while f is not None:
    if f.f_code in code:
      return True
    if f.f_code in _interruptible_code:
      return False
    f = f.f_back
  return False


def _defer(signum: int, frame: FrameType | None, code: set[CodeType]) -> bool:
  """True (and the signal is sent again shortly) when it lands inside ``code`` and its
  deferral has lasted less than :data:`MAX_DEFER_S`."""
  now = time.monotonic()
  if _inside(frame, code) and now - _deferred_since.setdefault(signum, now) < MAX_DEFER_S:
    _send_again(signum)
    return True
  _deferred_since.pop(signum, None)
  return False


# A deferred signal is sent again by one daemon thread, told through a pipe: a handler
# only writes a byte (it takes no lock and starts no thread, which could deadlock with
# the code it interrupted).
_resend: tuple[int, int] | None = None  # (write end of the pipe, pid that made it)


def _resender() -> None:
  """Starts the thread that sends deferred signals again (once; outside any handler)."""
  global _resend
  if _resend is not None and _resend[1] == os.getpid():
    return
  read, write = os.pipe()
  os.set_blocking(write, False)
  threading.Thread(target=_resend_loop, args=(read,), daemon=True,
                   name="jaxgreen-signal-again").start()
  _resend = (write, os.getpid())


def _resend_loop(read: int) -> None:
  while True:
    got = os.read(read, 1)
    if not got:
      return
    time.sleep(_RETRY_S)
    os.kill(os.getpid(), got[0])


def _send_again(signum: int) -> None:
  if _resend is not None and _resend[1] == os.getpid():
    try:
      os.write(_resend[0], bytes([signum]))
      return
    except OSError:  # the pipe is full: plenty are already on their way
      return
  timer = threading.Timer(_RETRY_S, os.kill, (os.getpid(), signum))  # a forked child
  timer.daemon = True
  timer.start()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
  global _interrupted_at
  _interrupted_at = time.monotonic()
  if _defer(signum, frame, _interrupt_code):
    return
  if _in_gc_callback(frame):
    # Python prints and drops an exception raised in a garbage-collector callback (jax
    # registers one): the KeyboardInterrupt would be lost. Taken again just after.
    _send_again(signum)
    return
  if _server_abort is not None and _in_server_call(frame):
    raise _server_abort()  # the ledger closes the connection, then raises KeyboardInterrupt
  signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt, as without jaxgreen


def _in_gc_callback(frame: FrameType | None) -> bool:
  codes = {getattr(cb, "__code__", None) for cb in gc.callbacks}
  f = frame
  while f is not None:
    if f.f_code in codes:
      return True
    f = f.f_back
  return False


def _in_server_call(frame: FrameType | None) -> bool:
  f = frame
  while f is not None:
    if f.f_code in _server_code:
      return True
    f = f.f_back
  return False


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
  _resender()
  signal.signal(signal.SIGTERM, _on_sigterm)
  _previous, _installed = previous, True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
  # Inside jaxgreen's own bookkeeping or a ledger transaction: let it finish and take
  # the signal again just after, for at most MAX_DEFER_S (a grace period is short).
  if _defer(signum, frame, _critical_code):
    return
  for exp in list(_WATCHED):
    exp._preempt(PREEMPT_TIMEOUT_S)
  previous = _previous
  if callable(previous):
    previous(signum, frame)
    return
  signal.signal(signum, signal.SIG_DFL)  # die of the signal, as without jaxgreen
  os.kill(os.getpid(), signum)
