"""The ledger: a durable SQLite or PostgreSQL record of tracked steps, trials and metrics.

Every SQL statement on the ledger's tables is in this file (writes, reads, merge) or, for the
schema's definition and its upgrade, in :mod:`jaxgreen._src.account.schema`, so the schema
and each query on it are read and changed together. How the ledger reaches its
database (opening, lock waits, retries, reconnection, the pending file) is apart, in
:mod:`~jaxgreen._src.account._connection`, the base of :class:`Ledger`.

A ledger is one SQLite file (stdlib ``sqlite3``, WAL journal) that any number of
processes of one machine may write at once, or a PostgreSQL database
(``postgresql://user@host:port/db``, the ``[postgres]`` extra) that every host of a
sweep writes live: the same tables, the same statements (``?`` placeholders, ``ON
CONFLICT (id) DO NOTHING``; :mod:`~jaxgreen._src.account._postgres` holds the server's
connection).
Rows are only ever inserted (a trial row is also updated when the trial ends), and
every row carries a globally unique id (uuid4, or a content hash for signatures), so
ledgers from several machines merge without double counting (:func:`merge`), and a
write retried after a lost connection adds nothing twice.

Schema, version 3 (``PRAGMA user_version = 3``, in PostgreSQL the ``meta`` row
``schema_version``; ``meta`` holds ``format``; a version-1 or 2 file is upgraded in
place, once, when opened for writing: :mod:`~jaxgreen._src.account.schema`):

``runs``        one row per :class:`~jaxgreen.Experiment` object in one process:
                ``id, experiment, host, pid, process_index, process_count,
                device_kind, device_count, jax_version, jaxgreen_version, started``.
``trials``      one row per trial (one hyperparameter assignment, H counts them):
                ``id, run_id, experiment, name, hparams`` (JSON), ``status``
                (``running | completed | stopped | failed | preempted``; reports
                show a ``running`` trial whose process is gone, or that wrote nothing
                for ``stale_after`` seconds, as ``crashed``), ``error, started, ended,
                energy_j, energy_source`` (``NULL`` unless measured), ``heartbeat``
                (unix time of the trial's last committed write), ``stale_after``;
                its measured throughput (v3; ``NULL`` until measured):
                ``timed_steps, timed_seconds, timed_fpo`` (decimal text),
                ``timed_fpo_per_device, chip, peak_dtype, peak, peak_source``
                (:class:`~jaxgreen._src.account.throughput.Throughput`'s fields); v4:
                the timed steps' model FPO (``timed_model_fpo``,
                ``timed_model_fpo_per_device``) and where the energy was drawn
                (``region, region_source, carbon_intensity, carbon_source, pue,
                pue_source``: :mod:`jaxgreen._src.account.schema`).
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
in Python with exact integers (:mod:`jaxgreen._src.account.pricetag`).

Rows a process could not write before it ended (a ledger locked or unreachable after
Ctrl-C or SIGTERM) are saved to the ledger's pending file (:meth:`Ledger.pending_path`,
JSON lines) and written, by id, at its next writing open. A SQLite ledger waits for
another writer's lock in short slices (:mod:`~jaxgreen._src.account._connection`), so Ctrl-C
is handled between slices; :func:`merge` checks each source against the schema before
writing.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
import sqlite3
import time
from collections.abc import Container, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from jaxgreen._src.account import _postgres, pricetag, schema
from jaxgreen._src.account._connection import _BUSY_SLICE_S as _BUSY_SLICE_S
from jaxgreen._src.account._connection import _RECONNECT_MIN_S as _RECONNECT_MIN_S
from jaxgreen._src.account._connection import _RECONNECT_PAUSE_S as _RECONNECT_PAUSE_S
from jaxgreen._src.account._connection import PENDING_FORMAT, LedgerConnection, _retry
from jaxgreen._src.account._connection import LedgerError as LedgerError  # its home for users
from jaxgreen._src.account._connection import _clear_error as _clear_error
from jaxgreen._src.account._connection import _server_error as _server_error
from jaxgreen._src.account.pricetag import PriceTag
from jaxgreen._src.account.schema import (
    CARBON_COLUMNS,
    CRASH_TIMEOUT_S,
    MODEL_COLUMNS,
    SCHEMA_VERSION,
    TABLES,
    THROUGHPUT_COLUMNS,
)
from jaxgreen._src.account.schema import STATUSES as STATUSES
from jaxgreen._src.account.throughput import Throughput, with_throughput
from jaxgreen._src.cost import Cost

KINDS = ("train", "eval")
_TABLES = TABLES

T = TypeVar("T")


class CountedSignature(Protocol):
  """The counted cost of one call of a tracked function for one input signature."""

  id: str
  function: str
  signature: str
  fpo: int
  cost: Cost


# A batch of calls of one signature within one trial, as written to ``steps``:
# (row id, signature, kind, steps, examples, first call, last call).
StepRow = tuple[str, CountedSignature, str, int, int, float, float]


class Ledger(LedgerConnection):
  """A SQLite ledger file or a PostgreSQL ledger server (see the module docstring for
  the schema).

  Args:
    path: the file (created if absent), ``":memory:"`` for a ledger that lives only as
      long as this object, or the URL of a PostgreSQL database
      (``postgresql://user:password@host:port/db``; its tables are created if absent;
      needs ``pip install 'jaxgreen[postgres]'``). ``path`` and ``repr`` show a URL
      with its password masked.
    timeout: seconds to wait for other writers before giving up.
    readonly: open an existing ledger without writing to it (reports, merge inputs);
      on a server, every transaction is read-only.

  Example:
    >>> with Ledger(":memory:") as led:
    ...   tag = led.price_tag()
    >>> tag.h, tag.fpo
    (0, 0)

  A ledger written by :class:`jaxgreen.Experiment` is read with::

    led = jaxgreen.Ledger("green.sqlite", readonly=True)
    print(led.price_tag().table())

  and a ledger server shared by every host of a sweep with
  ``jaxgreen.Ledger("postgresql://ann@db.lan/green", readonly=True)``.
  """

  def __init__(self, path: str | os.PathLike = "green.sqlite", *, timeout: float = 60.0,
               readonly: bool = False):
    self.version = SCHEMA_VERSION
    super().__init__(path, timeout=timeout, readonly=readonly)
    self._open()

  def reader(self) -> Ledger:
    """A new read-only ledger on the same file or server (with the same timeout), e.g.
    to read it after this one was closed."""
    again = self._url if self.dialect != "sqlite" else self.path
    return Ledger(again, readonly=True, timeout=self.timeout)

  def __repr__(self) -> str:
    return f"Ledger({self.path!r}{', readonly=True' if self.readonly else ''})"

  # -- setup -------------------------------------------------------------------

  def _schema_version(self) -> int:
    return schema.version(self.conn, self.dialect)

  def _read_version(self) -> int:
    return _retry(lambda: self.conn.execute("PRAGMA user_version").fetchone()[0],
                  self.timeout)

  def _check_version(self, version: int, writable: bool) -> None:
    if version > SCHEMA_VERSION:
      raise LedgerError(f"{self.path!r} has ledger schema {version}, newer than this "
                        f"jaxgreen reads ({SCHEMA_VERSION}); upgrade jaxgreen")
    if version == 0 and not writable:
      what = ("the URL of a database" if self.dialect != "sqlite" else "the .sqlite file")
      raise LedgerError(f"{self.path!r} is not a jaxgreen ledger (no schema version); "
                        f"pass {what} written by jaxgreen.Experiment")

  def _init_schema(self) -> None:
    d = self.dialect

    def init():
      with self.transaction() as c:
        if d != "sqlite":  # hosts opening the server at once create the schema once
          c.execute("SELECT pg_advisory_xact_lock(?)", (schema.PG_LOCK,))
        version = schema.version(c, d)
        self._check_version(version, writable=True)
        if version == 0:
          self._refuse_foreign(schema.tables(c, d))
          schema.create(c, d)
        elif version < SCHEMA_VERSION:
          schema.upgrade(c, version, d)

    if d == "sqlite":
      _retry(init, self.timeout)
    else:
      self._server(init, "open", self.timeout)

  def _refuse_foreign(self, tables: set[str]) -> None:
    if not tables - {"meta", *_TABLES}:
      return
    if self.dialect == "sqlite":
      raise LedgerError(f"{self.path!r} is a SQLite file of another program "
                        f"(tables {sorted(tables)}); choose a new ledger path")
    raise LedgerError(f"the database {self.path!r} holds tables of another program "
                      f"({sorted(tables)}); create one for the ledger with createdb NAME "
                      f"and pass its URL")

  def __enter__(self) -> Ledger:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # -- rows that could not be written ---------------------------------------------

  # -- reading -----------------------------------------------------------------

  def _replay(self, records: Sequence[Mapping[str, Any]]) -> None:
    self.write(functools.partial(_replay_records, records=records))

  def experiments(self) -> list[str]:
    return [r["experiment"] for r in self.rows(
        "SELECT DISTINCT experiment FROM trials ORDER BY experiment")]

  def integrity(self) -> str:
    """``PRAGMA integrity_check``: ``"ok"`` for a sound file. A server checks its own
    pages; for it this is ``"ok"`` once every table of the ledger answers."""
    if self.dialect != "sqlite":
      for table in ("meta", *_TABLES):
        self.rows(f"SELECT 1 FROM {table} LIMIT 1")
      return "ok"
    return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

  def trial_row(self, trial_id: str) -> dict[str, Any] | None:
    """``name, hparams, experiment, energy_j`` and the throughput columns
    (:data:`~jaxgreen._src.account.schema.THROUGHPUT_COLUMNS`, ``None`` until measured) of a
    recorded trial, or None."""
    timed = ", ".join(THROUGHPUT_COLUMNS if self.version >= 3 else
                      [f"NULL AS {c}" for c in THROUGHPUT_COLUMNS])
    timed += ", " + ", ".join(MODEL_COLUMNS if self.version >= 4 else
                              [f"NULL AS {c}" for c in MODEL_COLUMNS])
    found = self.rows(f"SELECT name, hparams, experiment, energy_j, {timed} FROM trials "
                      f"WHERE id = ?", (trial_id,))
    return found[0] if found else None

  def metric_names(self, experiment: str | None) -> list[str]:
    """The names of the metrics logged by trials of ``experiment`` (all when None)."""
    where, params = _where(experiment)
    return [r["name"] for r in self.rows(
        f"SELECT DISTINCT m.name FROM metrics m JOIN trials t ON t.id = m.trial_id {where} "
        f"ORDER BY m.name", params)]

  def metric_rows(self, experiment: str | None, metric: str) -> list[dict[str, Any]]:
    """Rows ``trial, trial_id, step, train_fpo, train_examples, metric, value`` of one
    metric, in logging order (``train_fpo`` as stored: decimal text)."""
    where, params = _where(experiment)
    cond = ("AND" if where else "WHERE") + " m.name = ?"
    return self.rows(
        f"SELECT t.name AS trial, t.id AS trial_id, m.step, m.train_fpo, m.train_examples, "
        f"m.name AS metric, m.value FROM metrics m JOIN trials t ON t.id = m.trial_id "
        f"{where} {cond} ORDER BY t.started, t.id, m.time, m.step", (*params, metric))

  def price_tag(self, experiment: str | None = None,
                joules_per_flop: float | None = None, run: str | None = None) -> PriceTag:
    """The price tag (Equation 1) of one experiment, or of all when ``None``.

    Args:
      run: only the trials of one run (one execution of the script): ``"latest"`` or
        the start of a run id (reports list them); default: every run.
      joules_per_flop: the energy estimate's J/FLOP (default: the chip table's).

    A trial whose throughput was recorded (schema 3) shows its FPO/s per device and MFU.
    """
    with self._snapshot():
      return self._price_tag(experiment, joules_per_flop, run)

  def _price_tag(self, experiment: str | None, joules_per_flop: float | None,
                 run: str | None) -> PriceTag:
    pricetag.check_joules_per_flop(joules_per_flop)
    where, params = _where(experiment)
    if experiment and experiment not in self.experiments() and not self.rows(
        "SELECT 1 FROM runs WHERE experiment = ? LIMIT 1", (experiment,)):
      raise ValueError(f"experiment={experiment!r} is not in {self.path!r}; it holds "
                       f"{self.experiments()}")
    if run is not None:
      run_id = self._pick_run(experiment, run)
      where, params = ((f"{where} AND" if where else "WHERE") + " t.run_id = ?",
                       (*params, run_id))
    trials, steps, inexact, no_examples, runs = self._price_tag_rows(where, params)
    tag = pricetag.build(experiment, trials, steps, inexact, no_examples, runs,
                         joules_per_flop=joules_per_flop)
    return with_throughput(tag, _stored_throughput(trials))

  def _price_tag_rows(self, where: str, params: tuple) -> tuple[
      list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[str],
      list[tuple[str, float | None]]]:
    """Trials, step rows, inexact signatures, train functions with no examples, runs."""
    also = "AND" if where else "WHERE"
    trials = self.rows(
        f"SELECT t.*, r.device_kind, r.device_count, r.host AS run_host, r.pid AS run_pid, "
        f"r.started AS run_started FROM trials t "
        f"LEFT JOIN runs r ON r.id = t.run_id {where} ORDER BY t.started, t.id", params)
    steps = self.rows(
        f"SELECT s.trial_id, s.kind, s.steps, s.examples, g.fpo, g.exact FROM steps s "
        f"JOIN signatures g ON g.id = s.signature_id JOIN trials t ON t.id = s.trial_id "
        f"{where}", params)
    inexact = self.rows(
        f"SELECT DISTINCT g.function, g.cost FROM signatures g JOIN steps s ON "
        f"s.signature_id = g.id JOIN trials t ON t.id = s.trial_id {where} "
        f"{also} g.exact = 0 ORDER BY g.function", params)
    no_examples = [r["function"] for r in self.rows(
        f"SELECT g.function FROM steps s JOIN signatures g ON g.id = s.signature_id "
        f"JOIN trials t ON t.id = s.trial_id {where} {also} "
        f"s.kind = 'train' GROUP BY g.function HAVING SUM(s.examples) = 0 "
        f"ORDER BY g.function", params)]
    runs = [(r["id"], r["started"]) for r in self.rows(
        "SELECT id, started FROM runs WHERE id IN (SELECT DISTINCT run_id FROM trials t "
        f"{where}) ORDER BY started, id", params)]
    return trials, steps, inexact, no_examples, runs

  def _pick_run(self, experiment: str | None, run: str) -> str:
    where, params = ("WHERE experiment = ?", (experiment,)) if experiment else ("", ())
    ids = [r["id"] for r in self.rows(f"SELECT id FROM runs {where} ORDER BY started, id",
                                      params)]
    if not isinstance(run, str) or not run:
      raise ValueError(f"run={run!r}: pass 'latest' or the start of a run id")
    found = ids[-1:] if run == "latest" else [i for i in ids if i.startswith(run)]
    if len(found) != 1:
      listed = ", ".join(i[:8] for i in ids[-5:]) or "none"
      raise ValueError(f"run={run!r} matches {'no' if not found else 'several'} runs of "
                       f"{experiment or 'the ledger'} (latest runs: {listed}); pass 'latest' "
                       f"or a longer start of a run id")
    return found[0]

  # -- writing -----------------------------------------------------------------

  def add_run(self, row: Sequence[Any]) -> None:
    """Records a run: ``id, experiment, host, pid, process_index, process_count,
    device_kind, device_count, jax_version, jaxgreen_version, started``."""
    self.write(lambda c: c.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", tuple(row)))

  def write_trial(self, trial_id: str, *, start: Sequence[Any] | None = None,
                  steps: Sequence[StepRow] = (), metrics: Sequence[Sequence[Any]] = (),
                  end: Sequence[Any] | None = None, known: Container[str] = (),
                  timeout: float | None = None,
                  stale_after: float = CRASH_TIMEOUT_S,
                  throughput: Sequence[Any] | Throughput | None = None,
                  hparams: str | None = None, carbon: Sequence[Any] | None = None) -> None:
    """Writes what one trial owes in one transaction (see :meth:`write`).

    Every row is written with ``ON CONFLICT (id) DO NOTHING`` on its unique id, so
    writing the same rows again (after an interruption just past the commit, or a lost
    connection) adds nothing twice.

    Args:
      trial_id: the trial's id.
      start: ``id, run_id, experiment, name, hparams, started, resumed``: the trial
        row to insert, or (``resumed`` true) to mark running again under ``run_id``.
      steps: step rows; the signature of each is written too unless it is in ``known``.
      metrics: rows ``id, trial_id, step, name, value, train_fpo, train_examples, time``.
      end: ``status, error, ended, energy_j, energy_source`` of the ended trial.
      known: ids of signatures already committed to this ledger.
      timeout: seconds to wait for another writer (None: the ledger's timeout).
      stale_after: seconds without a write after which the trial, still ``running``,
        is reported ``crashed``; every write stamps the trial's ``heartbeat``.
      throughput: the trial's measured throughput so far: ``timed_steps,
        timed_seconds, timed_fpo, timed_fpo_per_device, chip, peak_dtype, peak,
        peak_source`` (a :class:`~jaxgreen._src.account.throughput.Throughput`'s fields, in
        order; or the Throughput itself), stored in the trial's row.
      hparams: the trial's hyperparameters as JSON, replacing those of its row (some
        are known only once the trial runs: an HPO library's suggestions).
      carbon: the trial's :data:`~jaxgreen._src.account.schema.CARBON_COLUMNS` (where its
        energy was drawn: :meth:`jaxgreen._src.account.carbon.Carbon.values`).
    """
    timed = None if throughput is None else _throughput_values(throughput)
    model = (None if not isinstance(throughput, Throughput) or not throughput.model_known
             else (str(int(throughput.model_fpo or 0)), throughput.model_fpo_per_device))
    updates = [(cols, vals) for cols, vals in ((THROUGHPUT_COLUMNS, timed),
                                               (MODEL_COLUMNS, model), (CARBON_COLUMNS, carbon))
               if vals is not None]

    def write(c: sqlite3.Connection) -> None:
      if start is not None and start[-1]:  # resumed: running again, under this run
        c.execute("UPDATE trials SET status = 'running', run_id = ?, error = NULL, "
                  "ended = NULL WHERE id = ?", (start[1], start[0]))
      elif start is not None:
        c.execute("INSERT INTO trials (id, run_id, experiment, name, hparams, status, "
                  "started) VALUES (?, ?, ?, ?, ?, 'running', ?) ON CONFLICT (id) DO NOTHING",
                  tuple(start[:-1]))
      for row_id, sig, kind, n, examples, first, last in steps:
        if sig.id not in known:
          _write_signature(c, sig)
        c.execute("INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                  "ON CONFLICT (id) DO NOTHING",
                  (row_id, trial_id, sig.id, kind, n, examples, first, last))
      if metrics:
        c.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (id) DO NOTHING", metrics)
      if end is not None:
        c.execute("UPDATE trials SET status = ?, error = ?, ended = ?, energy_j = ?, "
                  "energy_source = ? WHERE id = ?", (*end, trial_id))
      for cols, vals in updates:  # throughput (schema 3), model FPO and carbon (4)
        c.execute(f"UPDATE trials SET {', '.join(f'{n} = ?' for n in cols)} WHERE id = ?",
                  (*vals, trial_id))
      if hparams is not None:
        c.execute("UPDATE trials SET hparams = ? WHERE id = ?", (hparams, trial_id))
      # The heartbeat: one update by primary key per committed write (bounded cost).
      c.execute("UPDATE trials SET heartbeat = ?, stale_after = ? WHERE id = ?",
                (time.time(), float(stale_after), trial_id))

    self.write(write, timeout=timeout)


def _throughput_values(tp: Sequence[Any] | Throughput) -> tuple[Any, ...]:
  """The 8 throughput columns of a trial's row (``timed_fpo`` as decimal text)."""
  values = tuple(getattr(tp, f) for f in list(Throughput.__dataclass_fields__)[:8]
                 ) if isinstance(tp, Throughput) else tuple(tp)
  if len(values) != len(THROUGHPUT_COLUMNS):
    raise ValueError(f"write_trial(throughput={tp!r}) must hold {len(THROUGHPUT_COLUMNS)} "
                     f"values ({', '.join(THROUGHPUT_COLUMNS)}), or be a Throughput")
  steps, seconds, fpo, per_device, chip, dtype, peak, source = values
  return (int(steps), float(seconds), str(int(fpo)), float(per_device), chip, dtype,
          None if peak is None else float(peak), source)


def stored_throughput(row: dict[str, Any]) -> Throughput | None:
  """The throughput recorded in a trial's row (schema 3: its throughput columns, as
  :meth:`Ledger.trial_row` returns them), or None when none was measured."""
  if not row.get("timed_steps"):
    return None
  return Throughput(
      steps=int(row["timed_steps"]), seconds=float(row["timed_seconds"] or 0.0),
      fpo=int(row["timed_fpo"] or 0), fpo_per_device=float(row["timed_fpo_per_device"] or 0),
      chip=row["chip"], dtype=row["peak_dtype"] or "bf16", peak=row["peak"],
      peak_source=row["peak_source"] or "unavailable: not recorded",
      model_fpo=None if row.get("timed_model_fpo") is None else int(row["timed_model_fpo"]),
      model_fpo_per_device=row.get("timed_model_fpo_per_device"))


def _stored_throughput(trials: Sequence[dict[str, Any]]) -> dict[str, Throughput]:
  """The recorded throughput of each trial whose row holds one (schema 3), by id."""
  found = {t["id"]: stored_throughput(t) for t in trials}
  return {k: v for k, v in found.items() if v is not None}


def _signature_values(sig: CountedSignature) -> tuple[Any, ...]:
  cost = sig.cost
  return (sig.id, sig.function, sig.signature, str(sig.fpo), str(int(cost.adds)),
          str(int(cost.muls)), int(cost.exact),
          # source sites are provenance of this checkout, not part of the count
          (dataclasses.replace(cost, by_site={}) if isinstance(cost, Cost) else cost)
          .to_json())


def _write_signature(c: sqlite3.Connection, sig: CountedSignature | Sequence[Any]) -> None:
  values = tuple(sig) if isinstance(sig, Sequence) else _signature_values(sig)
  c.execute("INSERT INTO signatures VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING", values)


# -- rows saved for a later write ------------------------------------------------------



def pending_record(trial_id: str, *, start: Sequence[Any] | None = None,
                   steps: Sequence[StepRow] = (), metrics: Sequence[Sequence[Any]] = (),
                   end: Sequence[Any] | None = None,
                   throughput: Sequence[Any] | Throughput | None = None,
                   hparams: str | None = None,
                   carbon: Sequence[Any] | None = None) -> dict[str, Any]:
  """What :meth:`Ledger.write_trial` would have written, as JSON-able data for
  :meth:`Ledger.save_pending` (arguments as there)."""
  sigs = {sig.id: list(_signature_values(sig)) for _, sig, *_ in steps}
  return {"format": PENDING_FORMAT, "trial": trial_id,
          "start": None if start is None else list(start),
          "signatures": list(sigs.values()),
          "steps": [[r, trial_id, sig.id, kind, n, ex, first, last]
                    for r, sig, kind, n, ex, first, last in steps],
          "metrics": [list(m) for m in metrics], "end": None if end is None else list(end),
          "throughput": None if throughput is None else list(_throughput_values(throughput)),
          "hparams": hparams, "carbon": None if carbon is None else list(carbon)}


def _replay_records(c: sqlite3.Connection, records: Sequence[Mapping[str, Any]]) -> None:
  """Writes saved records: rows by id (never twice); an end only over a trial still
  ``running`` (a later process may have resumed and ended it since)."""
  for r in records:
    tid = r["trial"]
    if r["start"]:
      c.execute("INSERT INTO trials (id, run_id, experiment, name, hparams, status, "
                "started) VALUES (?, ?, ?, ?, ?, 'running', ?) ON CONFLICT (id) DO NOTHING",
                tuple(r["start"][:6]))
    for sig in r["signatures"]:
      _write_signature(c, sig)
    for row in r["steps"]:
      c.execute("INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING", tuple(row))
    if r["metrics"]:
      c.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING", [tuple(m) for m in r["metrics"]])
    if r["throughput"]:
      c.execute(f"UPDATE trials SET {', '.join(f'{n} = ?' for n in THROUGHPUT_COLUMNS)} "
                f"WHERE id = ?", (*r["throughput"], tid))
    if r["hparams"] is not None:
      c.execute("UPDATE trials SET hparams = ? WHERE id = ?", (r["hparams"], tid))
    if r.get("carbon"):  # absent from files written before schema 4
      c.execute(f"UPDATE trials SET {', '.join(f'{n} = ?' for n in CARBON_COLUMNS)} "
                f"WHERE id = ?", (*r["carbon"], tid))
    if r["end"]:
      c.execute("UPDATE trials SET status = ?, error = ?, ended = ?, energy_j = ?, "
                "energy_source = ? WHERE id = ? AND status = 'running'", (*r["end"], tid))


def _where(experiment: str | None) -> tuple[str, tuple]:
  return ("WHERE t.experiment = ?", (experiment,)) if experiment else ("", ())


# The code of the functions inside which a ledger transaction is open: a signal
# handler that finds one of them on the stack lets the transaction finish first.
TRANSACTION_CODE = frozenset(f.__code__ for f in (
    Ledger.write, Ledger.write_trial, Ledger.add_run, inspect.unwrap(Ledger.transaction)))


# -- merge -----------------------------------------------------------------------


def merge(sources: Iterable[str | os.PathLike], dest: str | os.PathLike) -> dict[str, int]:
  """Copies every row of ``sources`` into ``dest`` (created if absent).

  Rows are keyed by globally unique ids, so merging the same source twice, or a
  ledger that already holds some of the rows, adds nothing twice. A trial that is
  ``running`` in one file and ended in another takes the ended row. Sources are
  opened read-only and never changed. Either may be a ledger server's URL: merging
  offline SQLite files into ``dest="postgresql://..."`` uploads them to the server.

  Every source is checked before anything is written: its tables and columns must be
  those the schema defines (:mod:`~jaxgreen._src.account.schema`; no name read from a
  source is ever put into SQL), each value of the declared type and within the
  schema's constraints, each id unique. A source failing a check is refused with one
  :class:`LedgerError` naming the table, column or row, and nothing is written.

  Returns:
    New rows added per table.

  Example::

    jaxgreen.merge_ledgers(["host0.sqlite", "host1.sqlite"], "all.sqlite")
    jaxgreen.merge_ledgers(["offline.sqlite"], "postgresql://ann@db.lan/green")
  """
  paths = [str(s) for s in sources]
  if not paths:
    raise ValueError("merge(sources=...) is empty; name at least one ledger file")
  if isinstance(dest, bool) or not isinstance(dest, str | os.PathLike) or not str(dest).strip():
    raise ValueError(f"merge(dest={dest!r}) must be the path of the merged ledger, e.g. "
                     f"'all.sqlite', or a ledger server's URL")
  dest = os.fspath(dest)
  for s in paths:  # checks every source before writing anything
    with Ledger(s, readonly=True) as src:
      _merge_batches(src)
  out = Ledger(dest)
  added = dict.fromkeys(_TABLES, 0)
  try:
    for s in paths:
      if _same_ledger(s, dest):
        continue
      with Ledger(s, readonly=True) as src:
        batches = _merge_batches(src)
      for table, n in out.write(functools.partial(_insert, batches=batches)).items():
        added[table] += n
  finally:
    out.close()
  return added


def _same_ledger(a: str, b: str) -> bool:
  if _postgres.is_url(a) or _postgres.is_url(b):
    return a.strip() == b.strip()
  return Path(a).resolve() == Path(b).resolve()


@functools.cache
def known_columns() -> dict[str, tuple[tuple[str, str, bool], ...]]:
  """Each table's columns in the schema this jaxgreen writes: ``(name, declared type,
  NOT NULL)``, read from :func:`jaxgreen._src.account.schema.create` run on an empty
  database, so the definitions there are the only list. Older schemas only added
  columns, so an older ledger's columns are a subset."""
  c = sqlite3.connect(":memory:", isolation_level=None)
  try:
    schema.create(c)
    return {t: tuple((r[1], str(r[2]).upper(), bool(r[3] or r[5]))
                     for r in c.execute(f"PRAGMA table_info({t})"))
            for t in _TABLES}
  finally:
    c.close()


def _refuse(src: Ledger, what: str) -> LedgerError:
  return LedgerError(f"merge: refused the source {src.path!r} (ledger schema "
                     f"{src.version}): {what}; nothing of it was written (is it a ledger "
                     f"written by jaxgreen, unchanged?)")


def _name(text: Any) -> str:
  r = repr(text)
  return r if len(r) <= 80 else r[:77] + "..."


def _source_columns(src: Ledger, table: str) -> list[str]:
  if src.dialect == "sqlite":
    return [r[1] for r in src.conn.execute(f"PRAGMA table_info({table})")]
  return [r["column_name"] for r in src.rows(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = "
      "current_schema() AND table_name = ? ORDER BY ordinal_position", (table,))]


def _check_tables(src: Ledger) -> None:
  """Refuses a source holding a table the schema does not define, or lacking one."""
  try:
    found = schema.tables(src.conn, src.dialect)
  except (sqlite3.Error, _postgres.ServerError) as e:
    raise _refuse(src, f"its tables could not be listed ({e})") from None
  extra = sorted(t for t in found - {"meta", *_TABLES} if not t.startswith("sqlite_"))
  if extra:
    raise _refuse(src, f"it holds a table {_name(extra[0])} that the schema does not define")
  missing = [t for t in _TABLES if t not in found]
  if missing:
    raise _refuse(src, f"it lacks the table {missing[0]!r}")


def _typed(value: Any, declared: str) -> bool:
  if declared == "INTEGER":
    return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63
  if declared == "REAL":
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and abs(value) < 2**1023)
  return isinstance(value, str) if declared == "TEXT" else False


def _check_rows(src: Ledger, table: str, cols: Sequence[tuple[str, str, bool]],
                rows: Sequence[Mapping[str, Any]]) -> None:
  """Refuses a value of the wrong type, a missing required value, or a repeated id."""
  seen: set[Any] = set()
  for r in rows:
    for name, declared, required in cols:
      v = r.get(name)
      if v is None and not required:
        continue
      if not _typed(v, declared):
        raise _refuse(src, f"{table}.{name} of row id {_name(r.get('id'))} holds "
                           f"{_name(v)}, not a value of type {declared}")
    if r["id"] in seen:
      raise _refuse(src, f"{table} holds the id {_name(r['id'])} twice")
    seen.add(r["id"])


def _merge_batches(src: Ledger) -> list[tuple[str, str, list[tuple]]]:
  """(table, INSERT statement, rows) of every non-empty table of ``src``, after its
  check (:func:`merge`): every name in a statement is one of the schema's own."""
  _check_tables(src)
  known = known_columns()
  batches = []
  for table in _TABLES:
    have = _source_columns(src, table)
    names = {n for n, _, _ in known[table]}
    odd = [c for c in have if c not in names]
    if odd:
      raise _refuse(src, f"its table {table!r} has a column {_name(odd[0])} that the schema "
                         f"does not define")
    cols = [c for c in known[table] if c[0] in have]
    if "id" not in have:
      raise _refuse(src, f"its table {table!r} has no id column")
    rows = src.rows(f"SELECT {', '.join(n for n, _, _ in cols)} FROM {table}")
    _check_rows(src, table, cols, rows)
    if not rows:
      continue
    names_in = [n for n, _, _ in cols]
    sql = (f"INSERT INTO {table} ({', '.join(names_in)}) VALUES "
           f"({', '.join('?' * len(names_in))}) ON CONFLICT(id) DO ")
    if table == "trials":
      sets = ", ".join(f"{c} = excluded.{c}" for c in names_in if c != "id")
      sql += (f"UPDATE SET {sets} WHERE trials.status = 'running' "
              f"AND excluded.status != 'running'")
    else:
      sql += "NOTHING"
    batches.append((table, sql, [tuple(r[n] for n in names_in) for r in rows]))
  _check_constraints(src, batches)
  return batches


def _check_constraints(src: Ledger, batches: Sequence[tuple[str, str, list[tuple]]]) -> None:
  """Runs the batches on an empty database of the schema: a value the schema's
  constraints forbid (a status or kind it does not know) refuses the source."""
  c = sqlite3.connect(":memory:", isolation_level=None)
  try:
    schema.create(c)
    for table, sql, values in batches:
      try:
        c.executemany(sql, values)
      except sqlite3.Error as e:
        raise _refuse(src, f"a row of its table {table!r} breaks the schema ({e})") from None
  finally:
    c.close()


def _insert(c: sqlite3.Connection, batches: Sequence[tuple[str, str, list[tuple]]]
            ) -> dict[str, int]:
  """Runs the batches of one source; returns the rows each table gained. One
  transaction per source: a merge killed midway adds nothing of it (never trials
  without their steps, which would read as 0 FPO until rerun)."""
  counts = {}
  for table, sql, values in batches:
    before = c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    c.executemany(sql, values)
    counts[table] = c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] - before
  return counts
