"""The ledger's schema (version 2) and the in-place upgrade of a version-1 ledger.

The tables are described in :mod:`jaxgreen.account.ledger`; this module holds their
SQL definition and the one migration. A ledger is upgraded in the transaction that
opens it for writing, once: a version-1 file opened by this jaxgreen becomes version 2
with every row kept. A jaxgreen that reads only version 1 refuses a version-2 file
with :class:`~jaxgreen.account.ledger.LedgerError` ("newer than this jaxgreen reads;
upgrade jaxgreen") before reading or writing anything.

Version 2 (``PRAGMA user_version = 2``) changes only the ``trials`` table:

* ``status`` may also be ``preempted`` (ended by SIGTERM);
* ``heartbeat``: unix time of the trial's last committed write (its row, a flush of
  its steps, a ``log``, its end), so a trial whose process died on another host can
  be told from one still writing;
* ``stale_after``: seconds of silence after which a ``running`` trial is reported
  ``crashed`` (:data:`CRASH_TIMEOUT_S`, or 3 flush windows when those are longer).

SQLite cannot change a table's CHECK constraint, so the upgrade rebuilds ``trials``
(create the new table, copy every row, drop the old one, rename): all in the
transaction that reads the version, so a process killed midway leaves version 1
intact, and two processes opening the file at once upgrade it once. A writer that
opened the file as version 1 before the upgrade keeps writing valid rows (its
statements name their columns; the new CHECK allows every old status).

Example:
  >>> import sqlite3
  >>> c = sqlite3.connect(":memory:", isolation_level=None)
  >>> create(c)
  >>> c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
  True
"""

from __future__ import annotations

import sqlite3
import time

SCHEMA_VERSION = 2
FORMAT = "jaxgreen-ledger"
STATUSES = ("running", "completed", "stopped", "failed", "preempted")
TABLES = ("runs", "trials", "signatures", "steps", "metrics")
# A running trial of another host whose last write is older than this is reported
# crashed (its flushes write at least every flush window while steps run).
CRASH_TIMEOUT_S = 3600.0

_TRIALS = """
CREATE TABLE {name} (
  id TEXT PRIMARY KEY, run_id TEXT NOT NULL, experiment TEXT NOT NULL, name TEXT,
  hparams TEXT NOT NULL DEFAULT '{{}}', status TEXT NOT NULL DEFAULT 'running'
  CHECK (status IN ('running', 'completed', 'stopped', 'failed', 'preempted')),
  error TEXT, started REAL, ended REAL, energy_j REAL, energy_source TEXT,
  heartbeat REAL, stale_after REAL)"""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, experiment TEXT NOT NULL, host TEXT, pid INTEGER,
  process_index INTEGER, process_count INTEGER, device_kind TEXT, device_count INTEGER,
  jax_version TEXT, jaxgreen_version TEXT, started REAL);
{_TRIALS.format(name="IF NOT EXISTS trials")};
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


def create(c: sqlite3.Connection) -> None:
  """Creates every table of the current version in an empty file (inside the caller's
  transaction) and stamps it."""
  for stmt in _SCHEMA.split(";"):
    if stmt.strip():
      c.execute(stmt)
  c.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (FORMAT,))
  c.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (str(time.time()),))
  c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def upgrade(c: sqlite3.Connection, version: int) -> None:
  """Upgrades a ledger of schema ``version`` (1) to the current one, inside the
  caller's write transaction; every row is kept.

  A version-1 trial gets as heartbeat its last known write: the latest of its start,
  its end, its step rows' last calls and its metrics' times.
  """
  if version != 1:
    raise ValueError(f"upgrade(version={version!r}): only schema 1 is upgraded")
  c.execute(_TRIALS.format(name="trials_v2"))
  c.execute(
      f"INSERT INTO trials_v2 ({_V1_COLUMNS}, heartbeat, stale_after) "
      f"SELECT {_V1_COLUMNS}, MAX(COALESCE(t.started, 0), COALESCE(t.ended, 0), "
      f"COALESCE((SELECT MAX(s.last) FROM steps s WHERE s.trial_id = t.id), 0), "
      f"COALESCE((SELECT MAX(m.time) FROM metrics m WHERE m.trial_id = t.id), 0)), "
      f"{CRASH_TIMEOUT_S} FROM trials t")
  c.execute("DROP TABLE trials")
  c.execute("ALTER TABLE trials_v2 RENAME TO trials")
  c.execute("CREATE INDEX IF NOT EXISTS trials_experiment ON trials (experiment)")
  c.execute("INSERT OR REPLACE INTO meta VALUES ('upgraded_from_1', ?)", (str(time.time()),))
  c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
