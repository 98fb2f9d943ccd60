"""The experiment/trial lifecycle: trials grouped in an experiment, written to a ledger.

An :class:`Experiment` is a named group of trials (H of Equation 1) recorded in a
:class:`~jaxgreen.Ledger`; steps tracked with ``@jaxgreen.track`` inside ``with
exp.trial(...)`` are attributed to that trial, buffered, and committed in batches
with bounded waits, so a busy ledger never stalls training (the README's "What the
ledger promises": nothing lost, nothing counted twice, SIGTERM flush).

Experiment and Trial share their bookkeeping (open trials, the signatures already
written, live throughput, the sinks) through one :class:`Bookkeeping` object, and call
each other only through named methods; both live in this file.

Example:
  >>> import jax, jax.numpy as jnp, jaxgreen
  >>> step = jaxgreen.track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
  >>> exp = Experiment("doc", ledger=None)  # None: kept in memory
  >>> with exp.trial({"lr": 0.1}) as trial:
  ...   y = step(jnp.ones(8))
  ...   trial.log(1, val_acc=0.9)
  >>> tag = exp.price_tag()
  >>> tag.h, tag.train_fpo, tag.train_examples
  (1, 16, 8)
  >>> exp.close()
"""

from __future__ import annotations

import atexit
import contextvars
import dataclasses
import json
import numbers
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from jaxgreen._src.account import _postgres, preemption
from jaxgreen._src.account.attribution import ACTIVE, RUNNING, RUNNING_LOCK, fallback_trial
from jaxgreen._src.account.carbon import RegionFinder
from jaxgreen._src.account.energy import (
  GATHER_TIMEOUT_S,
  Meter,
  NvmlMeter,
  gather_energy,
  trial_key,
)
from jaxgreen._src.account.ledger import (
  TRANSACTION_CODE,
  Ledger,
  LedgerError,
  pending_record,
  stored_throughput,
)
from jaxgreen._src.account.pricetag import PriceTag
from jaxgreen._src.account.schema import CRASH_TIMEOUT_S
from jaxgreen._src.account.sinks import Sinks
from jaxgreen._src.account.throughput import (
  StepTimer,
  Throughput,
  with_throughput,
)
from jaxgreen._src.account.tracker import Tracker, _Entry
from jaxgreen._version import __version__

# A flush triggered inside a train step waits at most this long for another process's
# write lock; if the ledger is busy the steps stay buffered for the next window, so a
# busy ledger never stalls training. Only close() and exit wait the ledger's full timeout.
_STEP_FLUSH_TIMEOUT_S = 0.05
# Trial start, log and end wait at most this long; a busy or full ledger keeps their rows
# for the next write (with one warning). Only close() and exit wait the full timeout.
_TRIAL_WRITE_TIMEOUT_S = 0.5
# After Ctrl-C, close() and the exit handler wait at most this long for a busy ledger (a
# second Ctrl-C stops the wait at once); what they could not write is saved to the
# ledger's pending file (Ledger.pending_path), written at its next open.
CLOSE_AFTER_INTERRUPT_S = 2.0


def current_trial() -> Trial | None:
  """The trial that tracked steps are attributed to now, or None.

  In the thread that started a trial (or a context copied from it) that is the trial
  of the innermost running ``with exp.trial()``. In another thread (a data loader, a
  thread pool) it is the innermost running trial, provided all running trials were
  started by one thread; with trials running in several threads a worker thread's
  steps cannot be attributed, and a warning says so once.
  """
  trial = ACTIVE.get()
  if trial is None and RUNNING:
    trial = fallback_trial()
  return trial if isinstance(trial, Trial) else None


def _device_info() -> dict[str, Any]:
  devices = jax.devices()
  return {"device_kind": devices[0].device_kind if devices else "?",
          "device_count": jax.device_count(), "process_index": jax.process_index(),
          "process_count": jax.process_count()}


@dataclasses.dataclass(eq=False)
class Bookkeeping:
  """What an experiment shares with its trials (``experiment.books``), in one place.

  The experiment owns it; each :class:`Trial` receives it. It is jaxgreen's own
  bookkeeping: read it, but do not change it.

  Attributes:
    region: where the trials draw their energy (:class:`RegionFinder`
      of :mod:`jaxgreen.carbon`).
    sinks: the trackers fed with each trial's metrics and figures.
    gather_energy: whether process 0 records the sum of every host's measured energy.
    signatures: ids of the step signatures already written to the ledger.
    open: trials started and not yet written as ended. Held strongly: a trial whose end
      write failed is written at close/exit even after the user's variable moved on.
    throughput: this process's trials by id (the trial while it runs, then its figures):
      reports of this process show it live; the ledger stores it at each write.
    interrupted: a KeyboardInterrupt left one of the trials.
  """

  region: RegionFinder
  sinks: Sinks
  gather_energy: bool
  signatures: set[str] = dataclasses.field(default_factory=set)
  open: dict[Trial, None] = dataclasses.field(default_factory=dict)
  throughput: dict[str, Trial | Throughput | None] = dataclasses.field(default_factory=dict)
  interrupted: bool = False
  warned: set[bool] = dataclasses.field(default_factory=set)

  def warn_once(self, error: Exception, busy: bool, ledger: str) -> None:
    """Warns once per experiment (and kind) that the ledger at ``ledger`` was not written."""
    if busy in self.warned:
      return
    self.warned.add(busy)
    why = "is busy (another writer holds its lock)" if busy else f"could not be written ({error})"
    warnings.warn(f"jaxgreen: the ledger {ledger!r} {why}; training goes on and "
                  f"the rows are kept in memory and written at the next flush, trial end, "
                  f"experiment.close() or exit", stacklevel=4)


class Experiment:
  """A named group of trials, recorded in a ledger.

  Multi-host: under ``jax.distributed`` every host runs the same SPMD step, which
  is ONE step of the global program (its arguments have global shapes), so by
  default only process 0 writes the ledger; other processes track in memory. Pass
  ``all_processes=True`` only when hosts run independent programs (e.g. separate
  trials), each then counted once by its own writer.

  Args:
    name: the experiment's name (trials of all runs with one name are reported together).
    ledger: a path (default ``"green.sqlite"``), a :class:`Ledger`, or None to keep
      everything in memory.
    flush_steps: commit tracked steps after this many calls...
    flush_seconds: ...or after this many seconds, whichever comes first. A killed
      process loses at most this window; trial ends and exit always commit.
    all_processes: record on every process, not only ``jax.process_index() == 0``.
    measure_energy: read NVML energy counters per trial where available (or pass a
      :class:`~jaxgreen._src.account.energy.Meter` class or factory, e.g.
      :class:`~jaxgreen._src.account.energy.RaplMeter` for the CPU's counters). Under
      ``jax.distributed`` every host measures its own devices and process 0 records
      the sum, gathered through the distributed runtime's key-value store (waiting at
      most :data:`~jaxgreen._src.account.energy.GATHER_TIMEOUT_S`; a partial sum says which
      hosts are missing). Hosts must start an experiment's trials in the same order.
    sinks: trackers that receive each trial's metrics and jaxgreen's figures (FPO,
      examples, FPO/s per device, MFU): ``jaxgreen.sinks.TensorBoard("runs")``,
      ``WandB(project=...)``, ``MLflow()``, a :class:`~jaxgreen._src.account.sinks.Sink` or a
      function ``fn(event, trial, step, values)``; see :mod:`jaxgreen._src.account.sinks`.
    region: where the trials draw their energy, for CO2e: ``"gcp:us-central1"``,
      ``"aws:us-east-1"``, ``"azure:eastus"``, a country code (``"FR"``); default
      ``$JAXGREEN_REGION``, else the cloud VM's metadata service, else unavailable
      (:mod:`jaxgreen._src.account.carbon`).
    pue: the data centre's power usage effectiveness (default: the provider's
      published figure, else ``$JAXGREEN_PUE``, else the industry average).

  Example::

    exp = jaxgreen.Experiment("mlp-sweep", ledger="green.sqlite")
    with exp.trial({"lr": 1e-3}) as trial:
      for step in range(100):
        state = train_step(state, batch)
      trial.log(step, val_acc=0.91)
    print(exp.report())
  """

  def __init__(self, name: str, ledger: str | os.PathLike | Ledger | None = "green.sqlite", *,
               flush_steps: int = 1000, flush_seconds: float = 30.0,
               all_processes: bool = False,
               measure_energy: bool | Callable[[], Meter] = True,
               sinks: Sequence[Any] | None = None, region: str | None = None,
               pue: float | None = None):
    if not isinstance(name, str) or not name.strip():
      raise ValueError(f"Experiment(name={name!r}) must be a non-empty string")
    if not isinstance(flush_steps, int) or flush_steps < 1:
      raise ValueError(f"Experiment(flush_steps={flush_steps!r}) must be an int >= 1")
    if (isinstance(flush_seconds, bool) or not isinstance(flush_seconds, int | float)
        or not flush_seconds > 0):
      raise ValueError(f"Experiment(flush_seconds={flush_seconds!r}) must be a number > 0")
    if not (ledger is None or isinstance(ledger, str | os.PathLike | Ledger)):
      raise TypeError(f"Experiment(ledger={ledger!r}): pass a file path such as "
                      f"'green.sqlite', a jaxgreen.Ledger, or None to keep it in memory")
    if isinstance(ledger, str | os.PathLike) and not str(ledger).strip():
      raise ValueError(f"Experiment(ledger={ledger!r}) is an empty path; pass a file path "
                       f"such as 'green.sqlite', or None to keep it in memory")
    self.name = name
    self.flush_steps = flush_steps
    self.flush_seconds = float(flush_seconds)
    # A running trial silent for this long is reported crashed (by other hosts).
    self.stale_after = max(CRASH_TIMEOUT_S, 3 * self.flush_seconds)
    self.measure_energy = measure_energy
    info = _device_info()
    self.recording = all_processes or info["process_index"] == 0
    self.books = Bookkeeping(
        region=RegionFinder(region, pue),  # never blocks: detection runs in a thread
        # Trackers are fed by the recording process only, like the ledger.
        sinks=Sinks(sinks, enabled=self.recording),
        # One writer for all hosts: it records the sum of every host's measured energy.
        gather_energy=bool(measure_energy and not all_processes
                           and info["process_count"] > 1))
    if isinstance(ledger, Ledger):
      self.ledger = ledger if self.recording else Ledger(":memory:")
    else:
      memory = ledger is None or not self.recording
      self.ledger = Ledger(":memory:" if memory else ledger)  # type: ignore[arg-type]
    self.run_id = uuid.uuid4().hex
    self._n = 0
    row = (self.run_id, name, socket.gethostname(), os.getpid(), info["process_index"],
           info["process_count"], info["device_kind"], info["device_count"],
           jax.__version__, __version__, time.time())
    self._created = time.monotonic()
    self._closed = False
    self.ledger.add_run(row)
    atexit.register(self._at_exit)
    preemption.watch(self, _CRITICAL)
    preemption.defer_interrupts(_STEP_BOOKKEEPING)

  def trial(self, hparams: Mapping[str, Any] | None = None, *, name: str | None = None,
            resume: Mapping[str, Any] | str | None = None) -> Trial:
    """A new trial (one hyperparameter assignment); use it as a context manager.

    Args:
      resume: a trial recorded earlier, to go on with after a checkpoint restore: its
        :meth:`Trial.state` (saved beside the checkpoint), or its ``id``. The trial
        goes on under the same id, so it counts once in H, not once per restart, and
        its cumulative FPO, examples and steps continue: from the ledger when it holds
        the trial (there they include the steps run after the checkpoint was saved:
        they were computed, so they cost), else from the state (a job restarted on
        another host with its own ledger file; merging the files later gives the
        trial's whole cost under one id).
    """
    if hparams is not None and not isinstance(hparams, Mapping):
      raise TypeError(f"trial(hparams={hparams!r}) must be a dict of name -> value")
    if resume is not None:
      return self._resume(resume, hparams, name)
    self._n += 1
    hp = dict(hparams or {})
    if name is None:
      name = ", ".join(f"{k}={v}" for k, v in hp.items()) or f"trial {self._n}"
    return Trial(self, name, hp)

  def _resume(self, resume: Mapping[str, Any] | str, hparams: Mapping[str, Any] | None,
              name: str | None) -> Trial:
    state = _check_state(resume, self.name) if isinstance(resume, Mapping) else None
    trial_id = state["trial"] if state is not None else resume
    if not isinstance(trial_id, str) or not trial_id:
      raise TypeError(f"trial(resume={trial_id!r}) must be a trial's state() or id, saved "
                      f"with the checkpoint")
    if any(t.id == trial_id for t in self.books.open):
      raise ValueError(f"trial(resume={trial_id!r}) is still open in this process; end it "
                       f"before resuming it")
    row = self.ledger.trial_row(trial_id)
    if row is None and state is not None:  # a ledger that never saw it: go on from the state
      t = Trial(self, name or state["name"],
                dict(hparams) if hparams is not None else dict(state["hparams"]),
                first_started=state["started"], energy_before=state["energy_j"])
      t.id = trial_id
      t.steps, t.train_examples = state["steps"], state["train_examples"]
      t.train_fpo = state["train_fpo"]
      warnings.warn(
          f"jaxgreen: {self.ledger.path!r} does not hold trial {t.name!r} ({trial_id[:8]}): "
          f"it goes on from its state ({t.steps:,} steps, {t.train_fpo:,} train FPO), but "
          f"those steps are recorded in another ledger, so this one's report shows only "
          f"the steps run from now on; merge the ledgers (jaxgreen ledger merge) for the "
          f"trial's whole cost", stacklevel=3)
      return t
    if row is None or row["experiment"] != self.name:
      where = "no trial" if row is None else f"experiment {row['experiment']!r}"
      raise ValueError(f"trial(resume={trial_id!r}): {self.ledger.path!r} holds {where} "
                       f"with this id, not a trial of {self.name!r}; pass the trial.state() "
                       f"or trial.id saved with the checkpoint, and the same experiment name "
                       f"and ledger")
    hp = dict(hparams) if hparams is not None else json.loads(row["hparams"] or "{}")
    tag = self.ledger.price_tag(self.name)
    (prev,) = [c for c in tag.trials if c.id == trial_id]
    t = Trial(self, name or row["name"] or trial_id[:8], hp, resumed=True,
              energy_before=row["energy_j"], timed_before=stored_throughput(row))
    t.id = trial_id
    t.steps = prev.train_steps + prev.eval_steps
    t.train_fpo, t.train_examples = prev.train_fpo, prev.train_examples
    return t

  def flush(self) -> None:
    """Commits what every open trial owes the ledger (safe from any thread); waits up
    to the ledger's timeout and raises :class:`~jaxgreen._src.account.ledger.LedgerError` if the
    ledger stays busy or full (the rows are kept)."""
    for t in list(self.books.open):
      t.flush()

  def price_tag(self, joules_per_flop: float | None = None,
                run: str | None = None) -> PriceTag:
    """The :class:`~jaxgreen.PriceTag` of this experiment: all its runs, or one
    (``run="this"``: this process's, ``"latest"``, or the start of a run id). After
    :meth:`close` it reads the ledger through a new read-only connection."""
    self.flush()
    run = self.run_id if run == "this" else run
    if self._closed and self.ledger.path != ":memory:":
      with self.ledger.reader() as led:
        tag = led.price_tag(self.name, joules_per_flop=joules_per_flop, run=run)
    else:
      tag = self.ledger.price_tag(self.name, joules_per_flop=joules_per_flop, run=run)
    live = {k: t.throughput if isinstance(t, Trial) else t
            for k, t in self.books.throughput.items()}
    return with_throughput(tag, live)

  def report(self, format: str = "text", joules_per_flop: float | None = None,
             run: str | None = None) -> str:
    """The price tag as ``"text"`` (a terminal table), ``"markdown"`` or ``"json"``;
    ``run`` as in :meth:`price_tag`."""
    formats = ("text", "markdown", "json")
    if format not in formats:
      raise ValueError(f"report(format={format!r}): use one of {formats}")
    tag = self.price_tag(joules_per_flop, run)
    if format == "json":
      return tag.to_json(indent=2)
    return tag.markdown() if format == "markdown" else tag.table()

  @property
  def _open(self) -> dict[Trial, None]:
    return self.books.open

  def _preempt(self, timeout: float) -> None:
    """SIGTERM: ends every open trial as preempted and writes what it owes within
    ``timeout`` seconds in all; what could not be written is saved as pending."""
    deadline = time.monotonic() + timeout
    for t in list(self.books.open):
      t.finish("preempted", "SIGTERM", timeout=max(0.001, deadline - time.monotonic()))
      if t.owes():
        t.write_owed(max(0.001, deadline - time.monotonic()))
    if self.books.open:
      self._save_pending("was not written within the preemption's wait")

  def _finish(self, raise_errors: bool) -> None:
    """Ends running trials as failed, then writes everything owed, waiting up to the
    ledger's timeout, or :data:`CLOSE_AFTER_INTERRUPT_S` after Ctrl-C (a trial whose
    end write failed keeps the status it asked for). Ctrl-C during the wait stops it."""
    interrupted = self.books.interrupted or preemption.interrupted_since(self._created)
    wait = min(self.ledger.timeout, CLOSE_AFTER_INTERRUPT_S) if interrupted else None
    failed: list[tuple[Trial, Exception]] = []
    try:
      for t in list(self.books.open):
        t.finish("failed", "the process exited before the trial ended",
                 timeout=None if wait is None else min(wait, _TRIAL_WRITE_TIMEOUT_S))
      deadline = None if wait is None else time.monotonic() + wait
      for t in list(self.books.open):
        try:
          t.write_owed(None if deadline is None else max(0.001, deadline - time.monotonic()),
                       raise_errors=True)
        except (sqlite3.Error, LedgerError, OSError) as e:
          failed.append((t, e))
    except KeyboardInterrupt:  # a Ctrl-C during the wait: stop waiting, keep the rows
      self._save_pending("was not written: Ctrl-C stopped the wait")
      if raise_errors:
        raise
      return
    if not failed:
      return
    steps = sum(t.owed_steps() for t, _ in failed)
    msg = (f"could not write {len(failed)} trial(s) ({steps} step(s)) to the ledger "
           f"{self.ledger.path!r}: {failed[-1][1]}")
    if raise_errors and not interrupted:
      raise LedgerError(f"{msg}; they are kept in memory: fix the cause and call close() "
                        f"again (they are also retried at exit)")
    if not self._save_pending(f"was busy or failed ({failed[-1][1]})"):
      warnings.warn(f"jaxgreen: {msg}; they are lost", stacklevel=2)

  def _save_pending(self, why: str) -> str | None:
    """Saves what every open trial owes to the ledger's pending file (written at the
    ledger's next open, once) and says where in one line; None if nothing was saved."""
    records, steps = [], 0
    saved: list[tuple[Trial, list[tuple], list[tuple], tuple | None, tuple | None,
                      str | None]] = []
    for t in list(self.books.open):
      rows, metrics, row, end, hparams = t.owed()
      timed = t.throughput if rows or end else None
      carbon = self.books.region.carbon(wait=0).values() if row or end else None
      records.append(pending_record(t.id, start=row, steps=rows, metrics=metrics, end=end,
                                    throughput=timed, hparams=hparams, carbon=carbon))
      saved.append((t, rows, metrics, row, end, hparams))
      steps += sum(r[3] for r in rows)
    try:
      path = self.ledger.save_pending(records)
    except OSError as e:
      warnings.warn(f"jaxgreen: could not save the rows the ledger {self.ledger.path!r} "
                    f"did not take to its pending file ({e})", stacklevel=3)
      return None
    if path is None:
      return None
    for t, rows, metrics, row, end, hparams in saved:
      t.settle(rows, metrics, row, end, hparams)
    print(f"jaxgreen: the ledger {self.ledger.path!r} {why}; {len(records)} trial(s), "
          f"{steps} step(s) saved to {path!r}, written by the ledger's next writing open",
          file=sys.stderr, flush=True)
    return path

  def _at_exit(self) -> None:
    self._finish(raise_errors=False)

  def __enter__(self) -> Experiment:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    """Ends open trials (as failed), writes what is owed and closes the ledger, a
    passed-in Ledger too. The one call that waits for a busy ledger (its full timeout):
    if the ledger still cannot be written, :class:`~jaxgreen._src.account.ledger.LedgerError` is
    raised, the ledger stays open, and the rows are kept for another close() or exit.

    After Ctrl-C it waits at most :data:`CLOSE_AFTER_INTERRUPT_S` (a second Ctrl-C stops
    the wait), and what could not be written is saved to the ledger's pending file
    (:meth:`~jaxgreen._src.account.ledger.Ledger.pending_path`; one line on stderr names it),
    written by the next open of the same ledger. The exit handler does the same.
    :meth:`price_tag` and :meth:`report` still work after close()."""
    self._finish(raise_errors=True)
    atexit.unregister(self._at_exit)
    self._closed = True
    if self.ledger.path != ":memory:":  # one in memory stays readable (price_tag, report)
      self.ledger.close()


class Trial:
  """One trial: steps tracked inside ``with exp.trial(...)`` are attributed to it.

  It ends ``completed``, ``failed`` (an exception left the block; it propagates),
  ``stopped`` (after :meth:`stop_early`) or ``preempted`` (by SIGTERM). All count in H
  and in the cost. Steps may be tracked, and :meth:`flush` called, from any thread.

  What a trial owes the ledger (its row, step rows, metrics, its end) is written with
  bounded waits from inside training; if the ledger is busy or full it is kept, held
  by the experiment, and written at the next flush, trial end, ``close()`` or exit.
  """

  def __init__(self, experiment: Experiment, name: str, hparams: dict[str, Any], *,
               resumed: bool = False, first_started: float | None = None,
               energy_before: float | None = None, timed_before: Throughput | None = None):
    self.experiment = experiment
    self._books = experiment.books
    self.name = name
    self.hparams = hparams
    self.id = uuid.uuid4().hex
    self.status = "new"
    self.train_fpo = 0
    self.train_examples = 0
    self.steps = 0
    # Steps not yet given a row id, and rows given an id but not known to be committed.
    # A row keeps its id until a commit holding it is confirmed, and rows are written
    # with INSERT OR IGNORE: a write interrupted after its COMMIT (Ctrl-C) and written
    # again never counts a step twice.
    self._lock = threading.RLock()
    self._buf: dict[tuple[_Entry, str], list] = {}
    self._owed: list[tuple] = []
    self._metrics_owed: list[tuple] = []
    self._row_owed: tuple | None = None
    self._end_owed: tuple | None = None
    self._pending = 0
    self._last_flush = time.monotonic()
    self._token: contextvars.Token | None = None
    self._stop_reason: str | None = None
    self._stopped = False
    self._meter: Meter | None = None
    self._meter_name = "NVML"
    self._energy: float | None = None
    self._energy_key: str | None = None  # multi-host: where hosts publish their energy
    self._started = 0.0
    self._first_started = first_started  # resumed from a state(): its first start
    self._resumed = resumed  # resumed from the ledger's row
    self._energy_before = energy_before  # resumed: the earlier runs' measured energy
    self._timer = StepTimer()  # steps, seconds, FPO, per device, model FPO...
    self._peak_of: Tracker | None = None
    self._timed_before = timed_before  # resumed: the earlier runs' figures
    self._hparams_owed: str | None = None

  def __enter__(self) -> Trial:
    self.start()
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
      # Ctrl-C: out at once, no ledger I/O (a busy or slow ledger); the end is written
      # by close(), the exit handler, or the next flush.
      self._books.interrupted = True
      self.finish("failed", f"{exc_type.__name__}: {exc}", write=False)
    elif exc_type is not None and not (exc_type is SystemExit and exc.code in (0, None)):
      self.finish("failed", f"{exc_type.__name__}: {exc}")
    else:  # sys.exit(0) inside the block is a normal end
      self.finish("stopped" if self._stopped else "completed", self._stop_reason)

  def start(self) -> Trial:
    if self.status != "new":
      raise RuntimeError(f"trial {self.name!r} was already started; make a new one "
                         f"with experiment.trial(...)")
    exp = self.experiment
    if exp.books.sinks:  # before the clock starts: opening a tracker run is not training
      exp.books.sinks.start(self)
    self.status = "running"
    self._started = time.time()
    started = self._started if self._first_started is None else self._first_started
    self._row_owed = (self.id, exp.run_id, exp.name, self.name,
                      json.dumps(self.hparams, default=str), started, self._resumed)
    exp.books.open[self] = None
    exp.books.throughput[self.id] = self
    if exp.books.gather_energy:
      self._energy_key = trial_key(exp.name)
    if exp.measure_energy:
      meter = exp.measure_energy() if callable(exp.measure_energy) else NvmlMeter()
      if meter.available:
        meter.start()
        self._meter = meter
    self._token = ACTIVE.set(self)
    with RUNNING_LOCK:
      RUNNING[self] = threading.get_ident()
    self.write_owed(_TRIAL_WRITE_TIMEOUT_S)
    return self

  def stop_early(self, reason: str | None = None) -> None:
    """Marks the trial as stopped early; it still counts in H and in the cost."""
    self._stopped = True
    self._stop_reason = reason

  @property
  def throughput(self) -> Throughput | None:
    """Achieved FPO/s per device and MFU of this trial's tracked steps, all functions
    together: each step is timed from the end of the trial's previous step to its own
    end (the first call of each signature, which compiles, is not timed). The peak is
    that of the last tracker that recorded a timed step. None before any timed step."""
    with self._lock:
      timed = self._timer.snapshot()
      source = self._peak_of
    if source is None:
      return self._timed_before
    now = source.throughput_of(timed)
    return now if self._timed_before is None else now.plus(self._timed_before)

  def update_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Adds hyperparameters known only once the trial runs (those an HPO library
    suggests inside the objective); the ledger's row is updated at the next write."""
    if not isinstance(hparams, Mapping):
      raise TypeError(f"update_hparams(hparams={hparams!r}) must be a dict of name -> value")
    with self._lock:
      self.hparams = {**self.hparams, **hparams}
      self._hparams_owed = json.dumps(self.hparams, default=str)

  def state(self) -> dict[str, Any]:
    """What a checkpoint needs to resume this trial: a small JSON-able dict.

    Save it beside the model's checkpoint and pass it back as
    ``experiment.trial(resume=state)`` after the restore, so the trial goes on (same id,
    counted once in H) with its FPO, examples and steps continuing. ``train_fpo`` is
    decimal text (it may exceed 2**63).

    Example:
      >>> exp = Experiment("doc-state", ledger=None)
      >>> with exp.trial({"lr": 0.1}) as t:
      ...   saved = t.state()  # e.g. ocp.args.JsonSave(saved) beside the model
      >>> saved["train_fpo"], saved["hparams"]
      ('0', {'lr': 0.1})
      >>> with exp.trial(resume=saved) as again:
      ...   again.id == t.id
      True
      >>> exp.close()

    With orbax (``import orbax.checkpoint as ocp``)::

      mngr.save(step, args=ocp.args.Composite(
          model=ocp.args.StandardSave(params), jaxgreen=ocp.args.JsonSave(trial.state())))
      saved = mngr.restore(step, args=ocp.args.Composite(
          model=ocp.args.StandardRestore(params), jaxgreen=ocp.args.JsonRestore()))
      with exp.trial(resume=saved["jaxgreen"]) as trial: ...
    """
    with self._lock:
      steps, fpo, examples = self.steps, self.train_fpo, self.train_examples
    energy = self._energy_before
    if self._meter is not None or self._energy is not None:
      energy = None  # measured energy is recorded by the ledger at the trial's end
    return {"format": _STATE_FORMAT, "trial": self.id, "experiment": self.experiment.name,
            "name": self.name, "hparams": json.loads(json.dumps(self.hparams, default=str)),
            "started": self._first_started or self._started or time.time(), "steps": steps,
            "train_fpo": str(fpo), "train_examples": examples, "energy_j": energy}

  def add_step(self, entry: _Entry, kind: str, examples: int,
               timing: tuple[float, bool, Tracker] | None = None) -> None:
    """Adds one tracked step of ``entry`` (a tracker's call) to the trial's buffer,
    and its interval to the trial's timing when ``timing`` is (clock, warm, tracker)."""
    key = (entry, kind)
    now = time.time()
    exp = self.experiment
    with self._lock:
      if timing is not None:
        self._time(entry, *timing)
      b = self._buf.get(key)
      if b is None:
        b = self._buf[key] = [0, 0, now, now]
      b[0] += 1
      b[1] += examples
      b[3] = now
      self.steps += 1
      if kind == "train":
        self.train_fpo += entry.fpo
        self.train_examples += examples
      self._pending += 1
      due = (self._pending >= exp.flush_steps
             or time.monotonic() - self._last_flush >= exp.flush_seconds)
      if due:  # the next window starts now, whatever this flush does
        self._pending = 0
        self._last_flush = time.monotonic()
    if due:
      self._flush_window()

  def _flush_window(self) -> None:
    """A flush window's write from inside a train step: never waits long for another
    process's write lock, and Ctrl-C is never deferred while it runs."""
    self.write_owed(_STEP_FLUSH_TIMEOUT_S, quiet_if_busy=True)
    if self._books.sinks:  # trackers: once per flush window, never every step
      self._books.sinks.flush(self)

  def _time(self, entry: _Entry, now: float, warm: bool, tracker: Tracker) -> None:
    """Times one step (under the lock): the interval since the trial's previous step."""
    if self._timer.step(now, warm, entry):
      self._peak_of = tracker

  def _take(self) -> list[tuple]:
    """Gives the buffered steps row ids; returns every row not known to be committed."""
    with self._lock:
      for (entry, kind), (steps, examples, first, last) in self._buf.items():
        self._owed.append((uuid.uuid4().hex, entry, kind, steps, examples, first, last))
      self._buf.clear()
      return list(self._owed)

  def owed(self) -> tuple[list[tuple], list[tuple], tuple | None, tuple | None, str | None]:
    """What the trial owes the ledger, read together: (step rows, metric rows, its
    row, its end, its hparams update); :meth:`settle` forgets it once written."""
    with self._lock:
      rows = self._take()
      return (rows, list(self._metrics_owed), self._row_owed, self._end_owed,
              self._hparams_owed)

  def counts(self) -> tuple[int, int, int]:
    """(train FPO, train examples, steps) so far, read together (safe from any thread)."""
    with self._lock:
      return self.train_fpo, self.train_examples, self.steps

  @property
  def energy_j(self) -> float | None:
    """Joules measured over this run of the trial once it ended; None before, or
    without a meter."""
    return self._energy

  def owed_steps(self) -> int:
    """Steps tracked and not yet known to be written."""
    with self._lock:
      return sum(r[3] for r in self._owed) + sum(b[0] for b in self._buf.values())

  def owes(self) -> bool:
    """Whether the trial owes the ledger anything."""
    with self._lock:
      return bool(self._buf or self._owed or self._metrics_owed or self._row_owed
                  or self._end_owed or self._hparams_owed)

  def write_owed(self, timeout: float | None, raise_errors: bool = False,
                 quiet_if_busy: bool = False) -> bool:
    """Writes everything this trial owes in one transaction; True once committed.

    Args:
      timeout: seconds to wait for another writer (None: the ledger's timeout).
      raise_errors: raise a failed write (explicit flush and close); otherwise it is
        kept for the next write and warned about once per experiment.
      quiet_if_busy: no warning when the ledger is only busy (a step's flush).
    """
    exp = self.experiment
    rows, metrics, row, end, hparams = self.owed()
    if not (rows or metrics or row or end or hparams):
      return True
    timed = self.throughput if rows or end else None
    # Where the energy is drawn: at the start as known then, at the end as found.
    carbon = exp.books.region.carbon(wait=0 if end is None else 2.0).values() \
        if row or end else None
    try:
      exp.ledger.write_trial(self.id, start=row, steps=rows, metrics=metrics, end=end,
                             known=exp.books.signatures, timeout=timeout,
                             stale_after=exp.stale_after, throughput=timed, hparams=hparams,
                             carbon=carbon)
    except (sqlite3.Error, LedgerError, OSError) as e:
      if raise_errors:
        raise
      busy = "locked" in str(e) or "busy" in str(e)
      if not (quiet_if_busy and busy):
        exp.books.warn_once(e, busy, exp.ledger.path)
      return False
    self.settle(rows, metrics, row, end, hparams)
    return True

  def settle(self, rows: Sequence[tuple], metrics: Sequence[tuple], row: tuple | None,
             end: tuple | None, hparams: str | None = None) -> None:
    """Forgets what a committed write held; an ended trial that owes nothing more
    leaves the experiment's open trials."""
    exp = self.experiment
    done = {r[0] for r in rows}
    metric_ids = {m[0] for m in metrics}
    with self._lock:
      self._owed = [r for r in self._owed if r[0] not in done]
      self._metrics_owed = [m for m in self._metrics_owed if m[0] not in metric_ids]
      if row is not None and self._row_owed is row:
        self._row_owed = None
      if end is not None and self._end_owed is end:
        self._end_owed = None
      if hparams is not None and self._hparams_owed is hparams:
        self._hparams_owed = None
      finished = (self.status not in ("new", "running") and self._end_owed is None
                  and self._hparams_owed is None and not self._owed and not self._buf)
    for r in rows:
      exp.books.signatures.add(r[1].id)
    if finished:
      exp.books.open.pop(self, None)

  def flush(self, timeout: float | None = None) -> None:
    """Commits what the trial owes the ledger (safe from any thread).

    Args:
      timeout: seconds to wait for another writer (default: the ledger's timeout);
        past it, or if the disk is full, :class:`~jaxgreen._src.account.ledger.LedgerError` is
        raised and the rows are kept for the next write.
    """
    self.write_owed(timeout, raise_errors=True)

  def log(self, step: int, **metrics: float) -> None:
    """Records validation metrics at ``step`` (and commits pending steps with them).

    Each value is stored with the trial's cumulative training FPO and examples, so a
    training curve is metric vs FPO. Values are converted with ``float()``: pass host
    numbers, or accept that a device value is read here. A busy or full ledger never
    stalls training: the rows are then kept and written at the next write.
    """
    if self.status != "running":
      raise RuntimeError(f"trial {self.name!r} is {self.status}; log() inside its with-block")
    if not metrics:
      raise ValueError("log(step, **metrics) needs at least one metric, e.g. val_acc=0.9")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
      raise TypeError(f"log(step={step!r}): the step must be an int (an epoch or step "
                      f"number); metrics are also stored with the trial's cumulative FPO")
    now = time.time()
    values = []
    for k, v in metrics.items():
      try:
        values.append((k, float(v)))
      except (TypeError, ValueError):
        raise TypeError(f"log({k}={v!r}): a metric must be a number") from None
    with self._lock:
      fpo, examples = str(self.train_fpo), self.train_examples
      self._metrics_owed += [(uuid.uuid4().hex, self.id, int(step), k, value, fpo, examples,
                              now) for k, value in values]
    self.write_owed(_TRIAL_WRITE_TIMEOUT_S)
    if self._books.sinks:
      self._books.sinks.log(self, int(step), dict(values))

  def end(self, status: str = "completed", error: str | None = None) -> None:
    """Ends a trial started with :meth:`start` (a with-block does this itself)."""
    if status not in ("completed", "stopped", "failed", "preempted"):
      raise ValueError(f"end(status={status!r}): use 'completed', 'stopped', 'failed' or "
                       f"'preempted'")
    self.finish(status, error)

  def finish(self, status: str, error: str | None,
           timeout: float | None = None, write: bool = True) -> None:
    with self._lock:
      if self.status != "running":
        return
      self.status = status
    ended = time.time()
    self._books.throughput[self.id] = self.throughput
    self._deactivate()
    with RUNNING_LOCK:
      RUNNING.pop(self, None)
    if self._meter is not None:
      self._meter_name = getattr(self._meter, "name", "NVML")
      self._energy = self._meter.stop()
      self._meter = None
    energy, source = self._energy, self._meter_name if self._energy is not None else None
    if self._energy_key is not None:  # multi-host: process 0 records every host's sum
      wait = GATHER_TIMEOUT_S if timeout is None else min(GATHER_TIMEOUT_S, timeout)
      energy, source = gather_energy(energy, self._energy_key, jax.process_index(),
                                     jax.process_count(), timeout=wait)
    if energy is not None and self._energy_before is not None:  # resumed: both parts
      energy += self._energy_before
    with self._lock:
      self._end_owed = (status, error, ended, energy, source)
    # If the write fails the trial stays owed (held by the experiment), so a later
    # flush, close() or the exit handler writes it with this status.
    if write:
      self.write_owed(_TRIAL_WRITE_TIMEOUT_S if timeout is None else timeout)
    if self._books.sinks:
      self._books.sinks.end(self, status)

  def _deactivate(self) -> None:
    """Stops attributing steps to this trial; an enclosing running trial takes over."""
    token, self._token = self._token, None
    if token is None or ACTIVE.get() is not self:
      return  # already replaced by a later trial: leave that one active
    previous = token.old_value
    try:
      ACTIVE.reset(token)
    except ValueError:  # ended from another context (atexit)
      ACTIVE.set(None)
    if isinstance(previous, Trial) and previous.status != "running":
      ACTIVE.set(None)  # trials ended out of order: never revive an ended one

  def __repr__(self) -> str:
    return (f"Trial({self.name!r}, status={self.status}, steps={self.steps}, "
            f"train_fpo={self.train_fpo:,})")

  # For Ctrl-C and SIGTERM (:mod:`jaxgreen._src.account.preemption`), by the code they run:
  # a step's bookkeeping (microseconds, no I/O), the writes from inside a step, and all
  # of the trial's bookkeeping.
  STEP_CODE = frozenset(f.__code__ for f in (add_step, _time, _take))
  WRITE_CODE = frozenset(f.__code__ for f in (_flush_window, write_owed))
  CRITICAL_CODE = frozenset(f.__code__ for f in (add_step, _time, _take, write_owed, settle,
                                                 flush, log, finish, _deactivate))


_STATE_FORMAT = "jaxgreen-trial-state/1"


def _check_state(state: Mapping[str, Any], experiment: str) -> dict[str, Any]:
  """A :meth:`Trial.state` read back from a checkpoint, checked and typed."""
  if state.get("format") != _STATE_FORMAT:
    raise ValueError(f"trial(resume=...) got a mapping that is not a Trial.state() (format "
                     f"{state.get('format')!r}, expected {_STATE_FORMAT!r}); pass what "
                     f"trial.state() returned, or the trial's id")
  if state.get("experiment") != experiment:
    raise ValueError(f"trial(resume=...): the state is of a trial of experiment "
                     f"{state.get('experiment')!r}, not {experiment!r}; resume it in an "
                     f"Experiment of that name")
  try:
    out = dict(state)
    out["steps"], out["train_examples"] = int(state["steps"]), int(state["train_examples"])
    out["train_fpo"], out["started"] = int(state["train_fpo"]), float(state["started"])
    out["hparams"] = dict(state.get("hparams") or {})
    out["energy_j"] = None if state.get("energy_j") is None else float(state["energy_j"])
  except (KeyError, TypeError, ValueError) as e:
    raise ValueError(f"trial(resume=...): the state is damaged ({e!r}); pass what "
                     f"trial.state() returned, unchanged") from None
  if not isinstance(out.get("trial"), str) or not out["trial"]:
    raise ValueError("trial(resume=...): the state has no trial id; pass what "
                     "trial.state() returned, unchanged")
  return out


# A tracked step's bookkeeping (microseconds, no I/O): Ctrl-C landing inside it is raised
# just after, so a step that ran is in the trial's buffer exactly once.
_STEP_BOOKKEEPING = Tracker.STEP_CODE | Trial.STEP_CODE

# Writes from inside a step: Ctrl-C landing in them (even below the bookkeeping that calls
# them) is raised at once; the rows they held are written again idempotently.
preemption.interruptible(Trial.WRITE_CODE)
preemption.server_calls(_postgres.SERVER_CALLS, _postgres.Interrupted)

# The code of jaxgreen's bookkeeping: SIGTERM landing inside it is taken again just after.
_CRITICAL = Tracker.STEP_CODE | Trial.CRITICAL_CODE | frozenset(TRANSACTION_CODE)
