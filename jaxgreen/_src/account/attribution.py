"""Which trial a tracked step belongs to.

A trial started with ``with exp.trial():`` is active in its context (a
:class:`contextvars.ContextVar`); a thread that did not inherit that context (a
``threading.Thread`` or thread pool starts with an empty one) attributes its steps to
the running trial of another thread, when that is unambiguous.

Example:
  >>> ACTIVE.get() is None and fallback_trial() is None  # no trial runs
  True
"""

from __future__ import annotations

import contextvars
import threading
import warnings
from typing import Any, Protocol


class StepSink(Protocol):
  """What a tracked step is attributed to (a :class:`jaxgreen.Trial`)."""

  status: str

  def add_step(self, entry: Any, kind: str, examples: int, timing: Any = None) -> None: ...


ACTIVE: contextvars.ContextVar[StepSink | None] = contextvars.ContextVar(
    "jaxgreen_trial", default=None)

# Trials started and not yet ended, in start order, with the thread that started each.
RUNNING: dict[StepSink, int] = {}
RUNNING_LOCK = threading.Lock()
_warned_ambiguous = False


def fallback_trial() -> StepSink | None:
  """The trial of a step run in a thread with no trial in its context, or None."""
  global _warned_ambiguous
  me = threading.get_ident()
  with RUNNING_LOCK:
    running = [(t, th) for t, th in RUNNING.items() if t.status == "running"]
  if not running or any(th == me for _, th in running):
    return None  # this thread runs trials of its own: its context is authoritative
  if len({th for _, th in running}) == 1:
    return running[-1][0]
  if not _warned_ambiguous:
    _warned_ambiguous = True
    warnings.warn("jaxgreen.track: a step ran in a thread without a trial while trials run "
                  "in several threads; it is not attributed to any trial. Start the worker "
                  "in the trial's context: contextvars.copy_context().run(...)", stacklevel=4)
  return None
