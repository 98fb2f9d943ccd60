"""Progress while targets compile: one status line on a terminal, nothing elsewhere.

Example:
  >>> import io
  >>> report, done = progress_line(io.StringIO())  # not a terminal: both do nothing
  >>> report("tpu:v5e:2x2", 0, 1)
  >>> done()
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from jaxgreen._src._target_error import TargetError

Report = Callable[[str, int, int], None]


class _StatusLine:
  """The state of one status line: the target compiling, and those done with their times."""

  def __init__(self, out: Any, tty: bool):
    self.out = out
    self.tty = tty
    self.lock = threading.Lock()
    self.stop = threading.Event()
    self.current: str | None = None
    self.since = 0.0
    self.done: list[str] = []
    self.i = 0
    self.n = 0
    self.ticker: threading.Thread | None = None

  def finish_current(self) -> None:
    if self.current is not None:
      self.done.append(f"{self.current} {time.perf_counter() - self.since:.1f} s")
      self.current = None

  def draw(self) -> None:
    with self.lock:
      if self.current is None:
        return
      msg = (f"compiling for {self.current} ({self.i + 1}/{self.n}, "
             f"{time.perf_counter() - self.since:.0f} s)")
      if self.done:
        msg += " - " + ", ".join(self.done[-3:])
      self._write("\r\033[K" + msg)

  def _write(self, text: str) -> None:
    with contextlib.suppress(Exception):
      self.out.write(text)
      self.out.flush()

  def _tick(self) -> None:
    while not self.stop.wait(1.0):
      self.draw()

  def report(self, target: str, i: int, n: int) -> None:
    with self.lock:
      self.finish_current()
      self.current, self.since, self.i, self.n = target, time.perf_counter(), i, n
    if not self.tty:
      return
    self.draw()
    if self.ticker is None:
      self.ticker = threading.Thread(target=self._tick, daemon=True, name="jaxgreen-progress")
      self.ticker.start()

  def close(self) -> None:
    self.stop.set()
    if self.ticker is not None:
      self.ticker.join(timeout=2)
    with self.lock:
      self.finish_current()
    if self.tty:
      self._write("\r\033[K")


def _is_tty(out: Any) -> bool:
  try:
    return bool(out.isatty())
  except (AttributeError, ValueError, OSError):
    return False


def progress_line(stream: Any = None) -> tuple[Report, Callable[[], None]]:
  """A ``(report, done)`` pair for the ``progress=`` argument of compare and reconcile.

  ``report(target, i, n)`` is called before target ``i`` of ``n``; on a terminal one
  status line is kept up to date, once a second while a target compiles:
  ``compiling for tpu:v5e:2x2 (2/3, 14 s) - cpu 0.4 s``, the time of each finished
  target after the dash. ``done()`` clears the line. When ``stream`` is not a terminal
  (a pipe, a CI log) both do nothing.

  Args:
    stream: where to write (default ``sys.stderr``).
  """
  out = stream if stream is not None else sys.stderr
  line = _StatusLine(out, _is_tty(out))
  return line.report, line.close


def progress_for(progress: Report | bool | None) -> tuple[Report, Callable[[], None]]:
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


def each_target(what: str, targets: Sequence[Any], progress: Report | bool | None,
                one: Callable[[Any], Any]) -> tuple[list, dict[str, str]]:
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
