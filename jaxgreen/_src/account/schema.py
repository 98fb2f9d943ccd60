"""The ledger's schema (version 4), its PostgreSQL dialect, and the in-place upgrade
of older ledgers.

The tables are described in :mod:`jaxgreen._src.account.ledger`; this module holds their
SQL definition and the migrations. A ledger is upgraded in the transaction that opens
it for writing, once: a version-1 or version-2 file opened by this jaxgreen becomes
version 3 with every row kept (1 → 2 → 3, chained). A jaxgreen that reads only an
older version refuses a newer ledger with :class:`~jaxgreen._src.account.ledger.LedgerError`
("newer than this jaxgreen reads; upgrade jaxgreen") before reading or writing anything.

Version 2 (``PRAGMA user_version = 2``) changes only the ``trials`` table:

* ``status`` may also be ``preempted`` (ended by SIGTERM);
* ``heartbeat``: unix time of the trial's last committed write (its row, a flush of
  its steps, a ``log``, its end), so a trial whose process died on another host can
  be told from one still writing;
* ``stale_after``: seconds of silence after which a ``running`` trial is reported
  ``crashed`` (:data:`CRASH_TIMEOUT_S`, or 3 flush windows when those are longer).

SQLite cannot change a table's CHECK constraint, so the 1 → 2 upgrade rebuilds
``trials`` (create the new table, copy every row, drop the old one, rename): all in the
transaction that reads the version, so a process killed midway leaves version 1
intact, and two processes opening the file at once upgrade it once. A writer that
opened the file as version 1 before the upgrade keeps writing valid rows (its
statements name their columns; the new CHECK allows every old status).

Version 3 (``PRAGMA user_version = 3``) adds to ``trials`` the measured throughput of
the trial (:class:`~jaxgreen._src.account.throughput.Throughput`), ``NULL`` until measured:
:data:`THROUGHPUT_COLUMNS` = ``timed_steps, timed_seconds, timed_fpo`` (decimal text),
``timed_fpo_per_device, chip, peak_dtype, peak, peak_source``. The 2 → 3 upgrade is
``ALTER TABLE trials ADD COLUMN`` (one per column) inside the opening transaction;
writers of version 2 keep writing valid rows.

Version 4 (``PRAGMA user_version = 4``) adds to ``trials`` where its energy was drawn
and the model FPO of its timed steps, ``NULL`` when unknown:
:data:`CARBON_COLUMNS` = ``region, region_source, carbon_intensity, carbon_source,
pue, pue_source`` (:class:`~jaxgreen._src.account.carbon.Carbon`'s fields: the grid's
gCO2e/kWh and the data centre's PUE, each with its source), and
:data:`MODEL_COLUMNS` = ``timed_model_fpo`` (decimal text),
``timed_model_fpo_per_device``: the timed steps' FPO as if nothing were rematerialised
(PaLM's model FLOPs; the throughput columns hold the FPO as run, the hardware FLOPs).
The 3 → 4 upgrade is ``ALTER TABLE trials ADD COLUMN``, as 2 → 3 was; older ledgers
chain (1 → 2 → 3 → 4) in one transaction.

The same schema lives in PostgreSQL (a shared ledger server): :func:`ddl` turns each
statement into that dialect (``REAL`` → ``DOUBLE PRECISION``, since PostgreSQL's
``REAL`` is 4 bytes and would round unix times to minutes; ``INTEGER`` → ``BIGINT``;
``TEXT`` sorts bytewise, as in SQLite). There is no ``PRAGMA user_version``: the
version is the ``meta`` row ``schema_version``, and creation or upgrade holds
``pg_advisory_xact_lock(`` :data:`PG_LOCK` ``)`` so hosts opening at once create it once.

Example:
  >>> import sqlite3
  >>> c = sqlite3.connect(":memory:", isolation_level=None)
  >>> create(c)
  >>> version(c) == SCHEMA_VERSION == 4
  True
  >>> ddl("CREATE TABLE t (id TEXT PRIMARY KEY, at REAL, n INTEGER)", "postgresql")
  'CREATE TABLE t (id TEXT COLLATE "C" PRIMARY KEY, at DOUBLE PRECISION, n BIGINT)'
"""

from __future__ import annotations

import re
import time
from typing import Any

SCHEMA_VERSION = 4
FORMAT = "jaxgreen-ledger"
STATUSES = ("running", "completed", "stopped", "failed", "preempted")
TABLES = ("runs", "trials", "signatures", "steps", "metrics")
DIALECTS = ("sqlite", "postgresql")
# A running trial of another host whose last write is older than this is reported
# crashed (its flushes write at least every flush window while steps run).
CRASH_TIMEOUT_S = 3600.0
# The key of the PostgreSQL advisory lock held while the schema is created or upgraded.
PG_LOCK = 0x6A6178677265656E  # "jaxgreen"

# Version 3: a trial's measured throughput, in Throughput's field order.
_THROUGHPUT = (("timed_steps", "INTEGER"), ("timed_seconds", "REAL"), ("timed_fpo", "TEXT"),
               ("timed_fpo_per_device", "REAL"), ("chip", "TEXT"), ("peak_dtype", "TEXT"),
               ("peak", "REAL"), ("peak_source", "TEXT"))
THROUGHPUT_COLUMNS = tuple(name for name, _ in _THROUGHPUT)
# Version 4: the grid and data centre the trial drew its energy from (Carbon's fields),
# and the model FPO (no rematerialisation) of the timed steps.
_CARBON = (("region", "TEXT"), ("region_source", "TEXT"), ("carbon_intensity", "REAL"),
           ("carbon_source", "TEXT"), ("pue", "REAL"), ("pue_source", "TEXT"))
CARBON_COLUMNS = tuple(name for name, _ in _CARBON)
_MODEL = (("timed_model_fpo", "TEXT"), ("timed_model_fpo_per_device", "REAL"))
MODEL_COLUMNS = tuple(name for name, _ in _MODEL)
# The columns each upgrade adds to ``trials``, by the version it upgrades to.
_ADDED = {3: _THROUGHPUT, 4: _CARBON + _MODEL}

_TRIALS = """
CREATE TABLE {name} (
  id TEXT PRIMARY KEY, run_id TEXT NOT NULL, experiment TEXT NOT NULL, name TEXT,
  hparams TEXT NOT NULL DEFAULT '{{}}', status TEXT NOT NULL DEFAULT 'running'
  CHECK (status IN ('running', 'completed', 'stopped', 'failed', 'preempted')),
  error TEXT, started REAL, ended REAL, energy_j REAL, energy_source TEXT,
  heartbeat REAL, stale_after REAL{extra})"""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, experiment TEXT NOT NULL, host TEXT, pid INTEGER,
  process_index INTEGER, process_count INTEGER, device_kind TEXT, device_count INTEGER,
  jax_version TEXT, jaxgreen_version TEXT, started REAL);
{_TRIALS.format(name="IF NOT EXISTS trials",
                extra="".join(f", {n} {t}" for n, t in _THROUGHPUT + _CARBON + _MODEL))};
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

_V1_COLUMNS = ("id, run_id, experiment, name, hparams, status, error, started, ended, "
               "energy_j, energy_source")

_PG_TYPES = {"REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT", "TEXT": 'TEXT COLLATE "C"'}


def ddl(sql: str, dialect: str = "sqlite") -> str:
  """A table definition of this module in ``dialect`` (``"sqlite"``: as written)."""
  if dialect == "sqlite":
    return sql
  return re.sub(r"\b(REAL|INTEGER|TEXT)\b", lambda m: _PG_TYPES[m.group(1)], sql)


def _set_meta(c: Any, key: str, value: str) -> None:
  c.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
            "excluded.value", (key, value))


def _stamp(c: Any, v: int, dialect: str) -> None:
  if dialect == "sqlite":
    c.execute(f"PRAGMA user_version = {int(v)}")
  else:
    _set_meta(c, "schema_version", str(v))


def version(c: Any, dialect: str = "sqlite") -> int:
  """The schema version of a ledger (0: none yet, an empty file or database)."""
  if dialect == "sqlite":
    return c.execute("PRAGMA user_version").fetchone()[0]
  if c.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
    return 0
  row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
  return int(row[0]) if row else 0


def tables(c: Any, dialect: str = "sqlite") -> set[str]:
  """The names of the tables already there (in PostgreSQL: in the current schema)."""
  if dialect == "sqlite":
    sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
  else:
    sql = ("SELECT table_name FROM information_schema.tables "
           "WHERE table_schema = current_schema()")
  return {r[0] for r in c.execute(sql).fetchall()}


def create(c: Any, dialect: str = "sqlite") -> None:
  """Creates every table of the current version in an empty file or database (inside
  the caller's transaction) and stamps it."""
  for stmt in _SCHEMA.split(";"):
    if stmt.strip():
      c.execute(ddl(stmt, dialect))
  c.execute("INSERT INTO meta VALUES ('format', ?) ON CONFLICT (key) DO NOTHING", (FORMAT,))
  c.execute("INSERT INTO meta VALUES ('created', ?) ON CONFLICT (key) DO NOTHING",
            (str(time.time()),))
  _stamp(c, SCHEMA_VERSION, dialect)


def upgrade(c: Any, version: int, dialect: str = "sqlite") -> None:
  """Upgrades a ledger of schema ``version`` (1, 2 or 3) to the current one, inside
  the caller's write transaction; every row is kept.

  A version-1 trial gets as heartbeat its last known write: the latest of its start,
  its end, its step rows' last calls and its metrics' times. Version-2 trials get the
  throughput columns, version-3 trials the carbon and model-FPO columns: ``NULL``
  (not known).
  """
  if version not in (1, 2, 3) or (version == 1 and dialect != "sqlite"):
    raise ValueError(f"upgrade(version={version!r}): only schemas 1 (SQLite), 2 and 3 "
                     f"are upgraded")
  if version == 1:
    _v1_to_v2(c)
    version = 2
  for to in range(version + 1, SCHEMA_VERSION + 1):
    for name, kind in _ADDED[to]:
      c.execute(ddl(f"ALTER TABLE trials ADD COLUMN {name} {kind}", dialect))
    _set_meta(c, f"upgraded_from_{to - 1}", str(time.time()))
  _stamp(c, SCHEMA_VERSION, dialect)


def _v1_to_v2(c: Any) -> None:
  c.execute(_TRIALS.format(name="trials_v2", extra=""))
  c.execute(
      f"INSERT INTO trials_v2 ({_V1_COLUMNS}, heartbeat, stale_after) "
      f"SELECT {_V1_COLUMNS}, MAX(COALESCE(t.started, 0), COALESCE(t.ended, 0), "
      f"COALESCE((SELECT MAX(s.last) FROM steps s WHERE s.trial_id = t.id), 0), "
      f"COALESCE((SELECT MAX(m.time) FROM metrics m WHERE m.trial_id = t.id), 0)), "
      f"{CRASH_TIMEOUT_S} FROM trials t")
  c.execute("DROP TABLE trials")
  c.execute("ALTER TABLE trials_v2 RENAME TO trials")
  c.execute("CREATE INDEX IF NOT EXISTS trials_experiment ON trials (experiment)")
  _set_meta(c, "upgraded_from_1", str(time.time()))
  c.execute("PRAGMA user_version = 2")
