"""The ledger: a durable SQLite record of tracked steps, trials and metrics.

A ledger is one SQLite file (stdlib ``sqlite3``, WAL journal) that any number of
processes may write at once. Rows are only ever inserted (a trial row is also
updated when the trial ends), and every row carries a globally unique id (uuid4,
or a content hash for signatures), so ledgers from several machines merge without
double counting (:func:`merge`).

Schema, version 1 (``PRAGMA user_version = 1``; ``meta`` holds ``format``):

``runs``        one row per :class:`~jaxgreen.Experiment` object in one process:
                ``id, experiment, host, pid, process_index, process_count,
                device_kind, device_count, jax_version, jaxgreen_version, started``.
``trials``      one row per trial (one hyperparameter assignment, H counts them):
                ``id, run_id, experiment, name, hparams`` (JSON), ``status``
                (``running | completed | stopped | failed``; reports show a
                ``running`` trial whose process is gone as ``crashed``), ``error, started,
                ended, energy_j, energy_source`` (``NULL`` unless measured).
``signatures``  the counted cost of ONE call of a tracked function for one input
                signature: ``id`` (hash of function, signature and cost),
                ``function, signature, fpo, adds, muls`` (decimal integer text:
                totals may exceed 2**63), ``exact, cost`` (``Cost`` as JSON).
``steps``       a batch of calls of one signature within one trial, written at
                each flush: ``id, trial_id, signature_id, kind`` (``train | eval``),
                ``steps, examples, first, last`` (unix times of first/last call).
``metrics``     one logged value: ``id, trial_id, step, name, value, train_fpo``
                (the trial's cumulative training FPO when logged, decimal text),
                ``train_examples, time``.

FPO of a trial = Σ over its ``steps`` rows of ``steps × signatures.fpo``, computed
in Python with exact integers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

SCHEMA_VERSION = 1
_FORMAT = "jaxgreen-ledger"
STATUSES = ("running", "completed", "stopped", "failed")
# As reported: a 'running' trial whose process is gone is reported as 'crashed'.
REPORTED_STATUSES = (*STATUSES, "crashed")
KINDS = ("train", "eval")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, experiment TEXT NOT NULL, host TEXT, pid INTEGER,
  process_index INTEGER, process_count INTEGER, device_kind TEXT, device_count INTEGER,
  jax_version TEXT, jaxgreen_version TEXT, started REAL);
CREATE TABLE IF NOT EXISTS trials (
  id TEXT PRIMARY KEY, run_id TEXT NOT NULL, experiment TEXT NOT NULL, name TEXT,
  hparams TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL DEFAULT 'running'
  CHECK (status IN ('running', 'completed', 'stopped', 'failed')),
  error TEXT, started REAL, ended REAL, energy_j REAL, energy_source TEXT);
CREATE TABLE IF NOT EXISTS signatures (
  id TEXT PRIMARY KEY, function TEXT NOT NULL, signature TEXT NOT NULL,
  fpo TEXT NOT NULL, adds TEXT NOT NULL, muls TEXT NOT NULL, exact INTEGER NOT NULL,
  cost TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
  id TEXT PRIMARY KEY, trial_id TEXT NOT NULL, signature_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('train', 'eval')), steps INTEGER NOT NULL,
  examples INTEGER NOT NULL, first REAL, last REAL);
CREATE TABLE IF NOT EXISTS metrics (
  id TEXT PRIMARY KEY, trial_id TEXT NOT NULL, step INTEGER, name TEXT NOT NULL,
  value REAL, train_fpo TEXT NOT NULL, train_examples INTEGER NOT NULL, time REAL);
CREATE INDEX IF NOT EXISTS steps_trial ON steps (trial_id);
CREATE INDEX IF NOT EXISTS metrics_trial ON metrics (trial_id);
CREATE INDEX IF NOT EXISTS trials_experiment ON trials (experiment);
"""
_TABLES = ("runs", "trials", "signatures", "steps", "metrics")

T = TypeVar("T")


class LedgerError(ValueError):
  """A file that is not a jaxgreen ledger, one written by a newer jaxgreen, or a ledger
  that cannot be read or written (full disk, damaged file, read-only folder, locked)."""


def _clear_error(e: sqlite3.Error, path: str, action: str) -> LedgerError:
  """One clear error for a SQLite failure: what happened to which file, and the fix."""
  msg = str(e).lower()
  if "full" in msg:
    fix = "free disk space or move the ledger to a larger disk; nothing committed is lost"
  elif "locked" in msg or "busy" in msg:
    fix = "another writer holds its write lock; retry, or raise Ledger(timeout=...)"
  elif "malformed" in msg or "not a database" in msg or "corrupt" in msg:
    fix = ("the file is damaged: recover it with `sqlite3 LEDGER .recover`, or restore a "
           "copy, and write new trials to a new ledger")
  elif "readonly" in msg or "read-only" in msg or "unable to open" in msg:
    fix = "the file or its folder is read-only; copy the ledger to a writable folder"
  elif "i/o" in msg:
    fix = "the disk reported an I/O error; check the disk, or write to another ledger"
  else:
    fix = "check the file"
  return LedgerError(f"could not {action} the ledger {path!r} ({e}); {fix}")


def _retry(fn: Callable[[], T], timeout: float) -> T:
  """Runs ``fn``, retrying with jittered backoff while another process holds the lock.

  SQLite's busy handler already waits ``timeout`` seconds for most locks, but some
  (switching to WAL, a reader upgrading to a writer) fail at once with SQLITE_BUSY.
  """
  deadline = time.monotonic() + timeout
  delay = 0.005
  while True:
    try:
      return fn()
    except sqlite3.OperationalError as e:
      msg = str(e).lower()
      if ("locked" not in msg and "busy" not in msg) or time.monotonic() > deadline:
        raise
      time.sleep(delay * random.uniform(0.5, 1.5))
      delay = min(2 * delay, 0.25)


class Ledger:
  """A SQLite ledger file (see the module docstring for the schema).

  Args:
    path: the file (created if absent), or ``":memory:"`` for a ledger that lives
      only as long as this object.
    timeout: seconds to wait for other writers before giving up.
    readonly: open an existing file without writing to it (reports, merge inputs).

  Example:
    >>> led = jaxgreen.Ledger("green.sqlite", readonly=True)
    >>> print(led.price_tag().table())
  """

  def __init__(self, path: str | os.PathLike = "green.sqlite", *, timeout: float = 60.0,
               readonly: bool = False):
    if isinstance(path, bool) or not isinstance(path, str | os.PathLike):
      raise TypeError(f"Ledger(path={path!r}) must be a file path such as 'green.sqlite' "
                      f"(or ':memory:' for a ledger that lives only in this process)")
    self.path = os.fspath(path)
    if not isinstance(self.path, str) or not self.path.strip():
      raise ValueError(f"Ledger(path={path!r}) is empty: SQLite would write a private "
                       f"temporary database that vanishes; pass a file path such as "
                       f"'green.sqlite' (or ':memory:')")
    self.timeout = float(timeout)
    self.readonly = readonly
    self._lock = threading.RLock()
    if readonly:
      if not Path(self.path).is_file():
        raise FileNotFoundError(f"no ledger at {self.path!r}; check the path "
                                f"(ledgers are written by jaxgreen.Experiment)")
      uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
      self.conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None,
                                  check_same_thread=False)
      with self._not_sqlite():
        try:
          version = self._read_version()
        except sqlite3.OperationalError as e:
          if "unable to open" not in str(e):
            self.conn.close()
            raise _clear_error(e, self.path, "read") from e
          version = self._open_immutable(uri, e)
        self._check_version(version, writable=False)
      return
    folder = Path(self.path).parent
    if self.path != ":memory:" and not folder.is_dir():
      raise FileNotFoundError(f"Ledger(path={self.path!r}): the folder {str(folder)!r} does "
                              f"not exist; create it or choose another path")
    self.conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                check_same_thread=False)
    with self._not_sqlite():
      if self.path != ":memory:":
        _retry(lambda: self.conn.execute("PRAGMA journal_mode=WAL").fetchone(), timeout)
        # In WAL mode NORMAL never corrupts the file and survives a killed process;
        # only an OS crash or power loss may drop the last commits.
        self.conn.execute("PRAGMA synchronous=NORMAL")
      self._init_schema()
      if self.path != ":memory:":
        # Never write new trials into a damaged file (reads of it would fail later).
        check = self.conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if check != "ok":
          self.conn.close()
          check = " ".join(str(check).split())
          raise LedgerError(f"the ledger {self.path!r} is damaged ({check}); recover it "
                            f"with `sqlite3 LEDGER .recover`, or restore a copy, and write "
                            f"new trials to a new ledger")

  def _open_immutable(self, uri: str, error: sqlite3.Error) -> int:
    """Reads a ledger whose folder is read-only (SQLite cannot create the ``-shm``
    file a WAL reader needs): as an immutable file, when no ``-wal`` holds commits."""
    self.conn.close()
    wal = Path(self.path + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
      raise LedgerError(f"cannot read the ledger {self.path!r}: its folder is read-only "
                        f"and its last commits are still in {str(wal)!r}; copy both files "
                        f"to a writable folder and read the copy") from error
    self.conn = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=self.timeout,
                                isolation_level=None, check_same_thread=False)
    return self._read_version()

  @contextlib.contextmanager
  def _not_sqlite(self):
    try:
      yield
    except sqlite3.DatabaseError as e:
      self.conn.close()
      if "not a database" not in str(e):
        raise _clear_error(e, self.path, "open") from e
      raise LedgerError(f"{self.path!r} is not a SQLite ledger ({e}); pass the .sqlite "
                        f"file written by jaxgreen.Experiment") from None

  # -- setup -------------------------------------------------------------------

  def _read_version(self) -> int:
    return _retry(lambda: self.conn.execute("PRAGMA user_version").fetchone()[0],
                  self.timeout)

  def _check_version(self, version: int, writable: bool) -> None:
    if version > SCHEMA_VERSION:
      raise LedgerError(f"{self.path!r} has ledger schema {version}, newer than this "
                        f"jaxgreen reads ({SCHEMA_VERSION}); upgrade jaxgreen")
    if version == 0 and not writable:
      raise LedgerError(f"{self.path!r} is not a jaxgreen ledger (no schema version); "
                        f"pass the .sqlite file written by jaxgreen.Experiment")

  def _init_schema(self) -> None:
    def init():
      with self.transaction() as c:
        version = c.execute("PRAGMA user_version").fetchone()[0]
        self._check_version(version, writable=True)
        if version == 0:
          tables = {r[0] for r in c.execute(
              "SELECT name FROM sqlite_master WHERE type = 'table'")}
          if tables - {"meta", *_TABLES}:
            raise LedgerError(f"{self.path!r} is a SQLite file of another program "
                              f"(tables {sorted(tables)}); choose a new ledger path")
          for stmt in _SCHEMA.split(";"):
            if stmt.strip():
              c.execute(stmt)
          c.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (_FORMAT,))
          c.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (str(time.time()),))
          c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    _retry(init, self.timeout)

  @contextlib.contextmanager
  def transaction(self):
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front, so two
    writers never deadlock upgrading a read lock; rolls back on error."""
    c = self.conn
    if c.in_transaction:  # left open by an interruption elsewhere: never keep the lock
      c.execute("ROLLBACK")
    try:
      # BEGIN inside the try: a Ctrl-C landing just after it still rolls back, so the
      # write lock is never left held (it would block every other writer of the file).
      c.execute("BEGIN IMMEDIATE")
      yield c
      c.execute("COMMIT")
    except BaseException:
      if c.in_transaction:
        with contextlib.suppress(sqlite3.Error):
          c.execute("ROLLBACK")
      raise

  def write(self, fn: Callable[[sqlite3.Connection], Any],
            timeout: float | None = None) -> Any:
    """Runs ``fn(conn)`` in one write transaction, retrying while the file is busy.

    Args:
      fn: writes through the connection it is given.
      timeout: seconds to wait for other writers (default: the ledger's ``timeout``).

    Raises:
      LedgerError: the write failed (still locked past ``timeout``, disk full, damaged
        or read-only file); the message names the cause and the fix. The transaction
        was rolled back: nothing of it was written.
    """
    if self.readonly:
      raise LedgerError(f"ledger {self.path!r} was opened readonly=True")
    wait = self.timeout if timeout is None else float(timeout)

    def attempt():
      # One connection serves every thread (check_same_thread=False): one
      # transaction at a time. Waiting for another thread is bounded like waiting
      # for another process.
      if not self._lock.acquire(timeout=max(wait, 0.001)):
        raise sqlite3.OperationalError("database is locked (by another thread of this "
                                       "process)")
      try:
        if wait != self.timeout:
          self.conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        try:
          with self.transaction() as c:
            return fn(c)
        finally:
          if wait != self.timeout:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
      finally:
        self._lock.release()

    try:
      return _retry(attempt, wait)
    except sqlite3.Error as e:
      raise _clear_error(e, self.path, "write") from e

  def close(self) -> None:
    with contextlib.suppress(sqlite3.Error):
      self.conn.close()

  def __enter__(self) -> Ledger:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # -- reading -----------------------------------------------------------------

  def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    try:
      cur = _retry(lambda: self.conn.execute(sql, params), self.timeout)
      names = [d[0] for d in cur.description]
      return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    except sqlite3.DatabaseError as e:
      raise _clear_error(e, self.path, "read") from e

  def experiments(self) -> list[str]:
    return [r["experiment"] for r in self.rows(
        "SELECT DISTINCT experiment FROM trials ORDER BY experiment")]

  def integrity(self) -> str:
    """``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
    return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

  def price_tag(self, experiment: str | None = None,
                joules_per_flop: float | None = None, run: str | None = None) -> PriceTag:
    """The price tag (Equation 1) of one experiment, or of all when ``None``; ``run``:
    only one run of it (``"latest"`` or the start of a run id)."""
    return price_tag(self, experiment, joules_per_flop=joules_per_flop, run=run)


# -- the price tag ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrialCost:
  """The cost of one trial. FPO totals are exact integers."""

  id: str
  experiment: str
  name: str
  hparams: Mapping[str, Any]
  status: str
  train_steps: int
  train_examples: int
  train_fpo: int
  eval_steps: int
  eval_examples: int
  eval_fpo: int
  wall_s: float | None
  device_kind: str
  device_count: int
  exact: bool
  energy_j: float | None
  energy_source: str | None
  error: str | None = None  # why it failed or stopped (the exception, the reason given)
  run_id: str | None = None

  @property
  def fpo(self) -> int:
    return self.train_fpo + self.eval_fpo

  @property
  def e_train(self) -> float | None:
    """E: training FPO per training example."""
    return self.train_fpo / self.train_examples if self.train_examples else None

  @property
  def e_eval(self) -> float | None:
    """E at inference: evaluation FPO per evaluated example."""
    return self.eval_fpo / self.eval_examples if self.eval_examples else None

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["hparams"] = dict(self.hparams)
    return d | {"fpo": self.fpo, "e_train": self.e_train, "e_eval": self.e_eval}


@dataclasses.dataclass(frozen=True)
class PriceTag:
  """Equation 1 of Green AI, Cost(R) ∝ E · D · H, for a set of trials.

  ``E`` is training FPO per example over all trials (Σ train FPO / Σ D), ``D`` the
  mean number of training examples per trial, ``H`` the number of trials (completed,
  stopped early and failed alike: all were paid for). ``E · D · H`` equals the total
  training FPO exactly (up to float rounding of E and D); evaluation (inference) work
  is reported apart. Energy is a separate figure, never added to FPO.
  """

  experiment: str | None
  trials: tuple[TrialCost, ...]
  joules_per_flop: float | None = None
  joules_per_flop_source: str | None = None
  inexact_notes: tuple[str, ...] = ()  # why counts are not exact, per signature
  runs: tuple[tuple[str, float | None], ...] = ()  # (run id, start time) in start order
  no_examples: tuple[str, ...] = ()  # train functions whose steps recorded 0 examples

  @property
  def h(self) -> int:
    return len(self.trials)

  @property
  def train_fpo(self) -> int:
    return sum(t.train_fpo for t in self.trials)

  @property
  def eval_fpo(self) -> int:
    return sum(t.eval_fpo for t in self.trials)

  @property
  def fpo(self) -> int:
    return self.train_fpo + self.eval_fpo

  @property
  def train_examples(self) -> int:
    return sum(t.train_examples for t in self.trials)

  @property
  def eval_examples(self) -> int:
    return sum(t.eval_examples for t in self.trials)

  @property
  def e(self) -> float | None:
    return self.train_fpo / self.train_examples if self.train_examples else None

  @property
  def e_eval(self) -> float | None:
    return self.eval_fpo / self.eval_examples if self.eval_examples else None

  @property
  def d(self) -> float | None:
    return self.train_examples / self.h if self.h else None

  @property
  def wall_s(self) -> float:
    return sum(t.wall_s or 0.0 for t in self.trials)

  @property
  def exact(self) -> bool:
    return all(t.exact for t in self.trials)

  def warnings(self) -> list[str]:
    """What the figures may hide: train steps that recorded no examples (D = 0)."""
    if not self.no_examples:
      return []
    return [f"D = 0 for the train step(s) {', '.join(self.no_examples)}: their FPO is "
            f"counted but no examples, so E and D are off; give track(examples=N), or "
            f"track(examples='name of the batch argument')"]

  def devices(self) -> str:
    kinds = sorted({f"{t.device_count} x {t.device_kind}" for t in self.trials})
    return ", ".join(kinds) or "-"

  def energy(self) -> tuple[float | None, str]:
    """(joules, label): measured where every trial was measured, else an estimate."""
    from jaxgreen.energy import trial_energy

    total, measured, estimates = 0.0, 0, []
    for t in self.trials:
      j, label = trial_energy(t, self.joules_per_flop)
      if j is None:
        return None, label
      total += j
      if label.startswith("measured"):
        measured += 1
      else:
        estimates.append(label)
    if not self.trials:
      return None, "unavailable: no trials"
    if not estimates:
      return total, "measured (NVML)"
    if not measured:
      return total, estimates[0] if len(set(estimates)) == 1 else "estimate, mixed chips"
    return total, (f"mixed: {measured} trial(s) measured (NVML), {len(estimates)} "
                   f"estimate(s)")

  def to_dict(self) -> dict[str, Any]:
    joules, label = self.energy()
    return {
        "experiment": self.experiment,
        "H_trials": self.h,
        "D_examples_per_trial": self.d,
        "E_train_fpo_per_example": self.e,
        "train_fpo": self.train_fpo,
        "train_examples": self.train_examples,
        "eval_fpo": self.eval_fpo,
        "eval_examples": self.eval_examples,
        "E_eval_fpo_per_example": self.e_eval,
        "fpo": self.fpo,
        "exact": self.exact,
        "inexact_notes": list(self.inexact_notes),
        "runs": [{"id": r, "started": t} for r, t in self.runs],
        "warnings": self.warnings(),
        "wall_s": self.wall_s,
        "devices": self.devices(),
        "energy_j": joules,
        "energy_label": label,
        "trials": [t.to_dict() for t in self.trials],
    }

  def to_json(self, **kw) -> str:
    return json.dumps(self.to_dict(), **kw)

  def table(self) -> str:
    """A plain-text report for a terminal."""
    return self._render(markdown=False)

  def markdown(self) -> str:
    return self._render(markdown=True)

  def _render(self, markdown: bool) -> str:
    from jaxgreen.report import human, markdown_table, table

    render = markdown_table if markdown else table
    title = self.experiment or "all experiments"
    out = [f"## Price tag: {title}" if markdown else f"Price tag: {title}", ""]
    rows = []
    for t in self.trials:
      rows.append([t.name, t.status, f"{t.train_steps:,}", f"{t.train_examples:,}",
                   _e(t.e_train), f"{t.train_fpo:,}", f"{t.eval_examples:,}", _e(t.e_eval),
                   f"{t.eval_fpo:,}", _s(t.wall_s)])
    out.append(render(["trial", "status", "steps", "D", "E train", "train FPO", "D eval",
                       "E eval", "eval FPO", "wall"], rows, "llrrrrrrrr"))
    out.append("D: examples; E: FPO per example")
    out.append("")
    e, d, h = self.e, self.d, self.h
    eq = "-"
    if e is not None and d is not None:
      eq = f"{e:,.1f} x {d:,.1f} x {h} = {e * d * h:,.0f}"
    spread = ""
    es = [t.e_train for t in self.trials if t.e_train is not None]
    if es and max(es) != min(es):
      spread = f" (per trial {human(min(es))} .. {human(max(es))})"
    joules, label = self.energy()
    totals = [
        ["E: train FPO per example", _e(e) + spread],
        ["D: train examples per trial (mean)", "-" if d is None else f"{d:,.1f}"],
        ["H: trials (every status)", f"{h} ({self._statuses()})"],
        ["E x D x H", eq],
        ["train FPO (sum over trials, steps)", f"{self.train_fpo:,} ({human(self.train_fpo)})"],
        ["eval FPO (inference, apart)",
         f"{self.eval_fpo:,} ({human(self.eval_fpo)}; E eval {_e(self.e_eval)})"],
        ["total FPO", f"{self.fpo:,} ({human(self.fpo)})"],
        ["exact", "yes" if self.exact else "NO (why: below)"],
        ["wall-clock", _s(self.wall_s)],
        ["devices", self.devices()],
        ["energy (not FPO)", label if joules is None else f"{joules:.3g} J ({label})"],
    ]
    if len(self.runs) > 1:
      first, last = self.runs[0], self.runs[-1]
      totals.append(["runs (script executions)",
                     f"{len(self.runs)}: {first[0][:8]} ({_date(first[1])}) .. {last[0][:8]} "
                     f"({_date(last[1])}); one run: --run latest"])
    out.append(render(["Equation 1: Cost(R) ∝ E · D · H", "value"], totals, "ll"))
    notes = [f"{t.name} ({t.status}): {t.error}" for t in self.trials if t.error]
    if notes:
      out += ["", "Why trials failed or stopped:"] + [f"  {n}" for n in notes]
    if not self.exact:
      out += ["", "Why counts are not exact:"] + [
          f"  {n}" for n in self.inexact_notes or ("a signature was not counted exactly",)]
    warns = self.warnings()
    if warns:
      out += [""] + [f"WARNING: {w}" for w in warns]
    return "\n".join(out)

  def _statuses(self) -> str:
    counts = {s: sum(t.status == s for t in self.trials) for s in REPORTED_STATUSES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def _date(t: float | None) -> str:
  return "?" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _e(x: float | None) -> str:
  return "-" if x is None else f"{x:,.1f}"


def _s(x: float | None) -> str:
  return "-" if x is None else f"{x:,.2f} s"


def _process_gone(host: str | None, pid: int | None, started: float | None) -> bool:
  """True when the process that wrote a run is known to be gone: it ran on this host
  and its pid is free, or was reused by a process started after the run. A run of
  another host cannot be checked from here (False)."""
  if not host or not pid or host != socket.gethostname() or pid == os.getpid():
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except (PermissionError, OSError):
    pass
  try:  # Linux: when did the process now holding this pid start?
    with open(f"/proc/{pid}/stat") as f:
      ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
      boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    return started is not None and boot + ticks / os.sysconf("SC_CLK_TCK") > started + 2
  except (OSError, ValueError, IndexError, StopIteration):
    return False


def _pick_run(ledger: Ledger, experiment: str | None, run: str) -> str:
  where, params = ("WHERE experiment = ?", (experiment,)) if experiment else ("", ())
  ids = [r["id"] for r in ledger.rows(f"SELECT id FROM runs {where} ORDER BY started, id",
                                      params)]
  if not isinstance(run, str) or not run:
    raise ValueError(f"run={run!r}: pass 'latest' or the start of a run id")
  found = ids[-1:] if run == "latest" else [i for i in ids if i.startswith(run)]
  if len(found) != 1:
    listed = ", ".join(i[:8] for i in ids[-5:]) or "none"
    raise ValueError(f"run={run!r} matches {'no' if not found else 'several'} runs of "
                     f"{experiment or 'the ledger'} (latest runs: {listed}); pass 'latest' or "
                     f"a longer start of a run id")
  return found[0]


def price_tag(ledger: Ledger, experiment: str | None = None, *,
              joules_per_flop: float | None = None, run: str | None = None) -> PriceTag:
  """Reads the per-trial costs of ``experiment`` (all when ``None``) from ``ledger``.

  Args:
    run: only the trials of one run (one execution of the script): ``"latest"`` or
      the start of a run id (reports list them); default: every run.
  """
  if joules_per_flop is not None and (
      isinstance(joules_per_flop, bool) or not isinstance(joules_per_flop, int | float)
      or not joules_per_flop > 0):
    raise ValueError(f"joules_per_flop={joules_per_flop!r} must be a number > 0 "
                     f"(e.g. 7.1e-13), or None to use the chip table")
  where, params = ("WHERE t.experiment = ?", (experiment,)) if experiment else ("", ())
  if experiment and experiment not in ledger.experiments() and not ledger.rows(
      "SELECT 1 FROM runs WHERE experiment = ? LIMIT 1", (experiment,)):
    raise ValueError(f"experiment={experiment!r} is not in {ledger.path!r}; it holds "
                     f"{ledger.experiments()}")
  if run is not None:
    run_id = _pick_run(ledger, experiment, run)
    where, params = ((f"{where} AND" if where else "WHERE") + " t.run_id = ?",
                     (*params, run_id))
  trials = ledger.rows(
      f"SELECT t.*, r.device_kind, r.device_count, r.host AS run_host, r.pid AS run_pid, "
      f"r.started AS run_started FROM trials t "
      f"LEFT JOIN runs r ON r.id = t.run_id {where} ORDER BY t.started, t.id", params)
  sums: dict[tuple[str, str], list[int]] = {}
  exact: dict[str, bool] = {}
  for r in ledger.rows(
      f"SELECT s.trial_id, s.kind, s.steps, s.examples, g.fpo, g.exact FROM steps s "
      f"JOIN signatures g ON g.id = s.signature_id JOIN trials t ON t.id = s.trial_id "
      f"{where}", params):
    acc = sums.setdefault((r["trial_id"], r["kind"]), [0, 0, 0])
    acc[0] += r["steps"]
    acc[1] += r["examples"]
    acc[2] += r["steps"] * int(r["fpo"])
    exact[r["trial_id"]] = exact.get(r["trial_id"], True) and bool(r["exact"])
  out = []
  for t in trials:
    tr = sums.get((t["id"], "train"), [0, 0, 0])
    ev = sums.get((t["id"], "eval"), [0, 0, 0])
    done = t["ended"] is not None and t["started"] is not None
    wall = t["ended"] - t["started"] if done else None
    out.append(TrialCost(
        id=t["id"], experiment=t["experiment"], name=t["name"] or t["id"][:8],
        hparams=json.loads(t["hparams"] or "{}"),
        status="crashed" if t["status"] == "running" and _process_gone(
            t["run_host"], t["run_pid"], t["run_started"]) else t["status"],
        train_steps=tr[0], train_examples=tr[1], train_fpo=tr[2],
        eval_steps=ev[0], eval_examples=ev[1], eval_fpo=ev[2], wall_s=wall,
        device_kind=t["device_kind"] or "?", device_count=t["device_count"] or 0,
        exact=exact.get(t["id"], True), energy_j=t["energy_j"],
        energy_source=t["energy_source"], error=t["error"], run_id=t["run_id"]))
  notes: list[str] = []
  for r in ledger.rows(
      f"SELECT DISTINCT g.function, g.cost FROM signatures g JOIN steps s ON "
      f"s.signature_id = g.id JOIN trials t ON t.id = s.trial_id {where} "
      f"{'AND' if where else 'WHERE'} g.exact = 0 ORDER BY g.function", params):
    try:
      cost = json.loads(r["cost"])
    except ValueError:
      cost = {}
    why = list(cost.get("inexact") or [])
    why += [f"no rule for {k} (x{v})" for k, v in (cost.get("uncounted") or {}).items()]
    for w in why or ["not exact"]:
      note = f"{r['function']}: {w}"
      if note not in notes:
        notes.append(note)
  no_examples = [r["function"] for r in ledger.rows(
      f"SELECT g.function FROM steps s JOIN signatures g ON g.id = s.signature_id "
      f"JOIN trials t ON t.id = s.trial_id {where} {'AND' if where else 'WHERE'} "
      f"s.kind = 'train' GROUP BY g.function HAVING SUM(s.examples) = 0 "
      f"ORDER BY g.function", params)]
  runs = [(r["id"], r["started"]) for r in ledger.rows(
      "SELECT id, started FROM runs WHERE id IN (SELECT DISTINCT run_id FROM trials t "
      f"{where}) ORDER BY started, id", params)]
  return PriceTag(experiment, tuple(out), joules_per_flop,
                  None if joules_per_flop is None else "given", tuple(notes), tuple(runs),
                  tuple(no_examples))


# -- merge -----------------------------------------------------------------------


def merge(sources: Iterable[str | os.PathLike], dest: str | os.PathLike) -> dict[str, int]:
  """Copies every row of ``sources`` into ``dest`` (created if absent).

  Rows are keyed by globally unique ids, so merging the same source twice, or a
  ledger that already holds some of the rows, adds nothing twice. A trial that is
  ``running`` in one file and ended in another takes the ended row. Sources are
  opened read-only and never changed.

  Returns:
    New rows added per table.
  """
  sources = [str(s) for s in sources]
  if not sources:
    raise ValueError("merge(sources=...) is empty; name at least one ledger file")
  if isinstance(dest, bool) or not isinstance(dest, str | os.PathLike) or not str(dest).strip():
    raise ValueError(f"merge(dest={dest!r}) must be the path of the merged ledger, e.g. "
                     f"'all.sqlite'")
  dest = os.fspath(dest)
  for s in sources:
    Ledger(s, readonly=True).close()  # validates each input before writing anything
  out = Ledger(dest)
  added = dict.fromkeys(_TABLES, 0)
  try:
    for s in sources:
      if Path(s).resolve() == Path(dest).resolve():
        continue
      src = Ledger(s, readonly=True)
      try:
        batches = []
        for table in _TABLES:
          rows = src.rows(f"SELECT * FROM {table}")
          if not rows:
            continue
          cols = list(rows[0])
          sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                 f"({', '.join('?' * len(cols))}) ON CONFLICT(id) DO ")
          if table == "trials":
            sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "id")
            sql += (f"UPDATE SET {sets} WHERE trials.status = 'running' "
                    f"AND excluded.status != 'running'")
          else:
            sql += "NOTHING"
          batches.append((table, sql, [tuple(r.values()) for r in rows]))

        def ins(c, batches=batches):
          # One transaction per source: a merge killed midway adds nothing of it (never
          # trials without their steps, which would read as 0 FPO until rerun).
          counts = {}
          for table, sql, values in batches:
            before = c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            c.executemany(sql, values)
            counts[table] = c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] - before
          return counts

        for table, n in out.write(ins).items():
          added[table] += n
      finally:
        src.close()
  finally:
    out.close()
  return added
