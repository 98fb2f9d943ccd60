"""Schemas 2 and 3: the in-place upgrade of version-1 and version-2 ledgers, the
``preempted`` status, the heartbeat that reports a trial whose process died on another
host as ``crashed``, and a trial's stored throughput."""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import sqlite3
import time
import types

import jax
import jax.numpy as jnp
import pytest

from jaxgreen._src.account import (
  Experiment,
  Ledger,
  LedgerError,
  Throughput,
  ledger,
  pricetag,
  schema,
  track,
)

N = 8  # elements of the toy step's input: N MUL + N ADD per call
# A ledger written by jaxgreen's schema-1 code (the release before schema 2): experiment
# "v1", trials lr=0.1 completed (5 train calls, 1 eval call of 7 ADD, 1 metric),
# lr=10.0 failed (1 call), lr=0.01 stopped (2 calls, a NaN metric), lr=1.0 still
# running (3 calls) on host "old-host"; 8 step rows, 12 calls.
V1 = pathlib.Path(__file__).parent / "data" / "ledger_v1.sqlite"


def _step():
  return track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")


def _v1_copy(tmp_path) -> pathlib.Path:
  path = tmp_path / "old.sqlite"
  shutil.copyfile(V1, path)
  return path


def _dump(path) -> dict[str, list[tuple]]:
  c = sqlite3.connect(path)
  try:
    return {t: c.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("meta", "runs", "trials", "signatures", "steps", "metrics")}
  finally:
    c.close()


def _digest(path) -> str:
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


# -- the upgrade ------------------------------------------------------------------------


def test_a_v1_ledger_upgrades_in_place_with_every_row_intact(tmp_path):
  path = _v1_copy(tmp_path)
  before = _dump(path)
  assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1
  with Ledger(path, readonly=True) as led:  # this jaxgreen reads a v1 file as it is
    old_tag = led.price_tag("v1")
  with Ledger(path) as led:  # opened for writing: upgraded, once
    assert led.rows("PRAGMA user_version") == [{"user_version": 4}]  # 1 -> 2 -> 3 -> 4
    beats = led.rows("SELECT id, heartbeat, stale_after FROM trials ORDER BY id")
    expected = led.rows(
        "SELECT t.id, MAX(COALESCE(t.started, 0), COALESCE(t.ended, 0), "
        "COALESCE((SELECT MAX(last) FROM steps WHERE trial_id = t.id), 0), "
        "COALESCE((SELECT MAX(time) FROM metrics WHERE trial_id = t.id), 0)) AS beat "
        "FROM trials t ORDER BY t.id")
    assert led.integrity() == "ok"
  after = _dump(path)
  for table in ("runs", "signatures", "steps", "metrics"):
    assert after[table] == before[table], table
  assert [r[:11] for r in after["trials"]] == before["trials"]  # the 11 v1 columns
  assert [(b["heartbeat"], b["stale_after"]) for b in beats] == [
      (e["beat"], schema.CRASH_TIMEOUT_S) for e in expected]  # its last known write
  assert set(before["meta"]) <= set(after["meta"])
  with Ledger(path, readonly=True) as led:
    tag = led.price_tag("v1")
  assert [(t.name, t.status, t.train_steps, t.train_fpo, t.eval_fpo) for t in tag.trials][:3] == [
      (t.name, t.status, t.train_steps, t.train_fpo, t.eval_fpo) for t in old_tag.trials][:3]
  # 11 train calls (5 + 1 + 2 + 3) of 2 * N FPO; 1 eval call of N - 1 ADD (a sum of N)
  assert (tag.h, tag.train_fpo, tag.eval_fpo) == (4, 11 * 2 * N, N - 1)
  upgraded = after["meta"]
  with Ledger(path):  # a second open upgrades nothing again
    pass
  assert _dump(path)["meta"] == upgraded


def test_an_upgrade_interrupted_midway_leaves_the_v1_file_intact(tmp_path, monkeypatch):
  path = _v1_copy(tmp_path)
  before = _dump(path)
  real = schema.upgrade

  def killed(c, version, *dialect):
    real(c, version, *dialect)  # the table is rebuilt, then Ctrl-C lands before COMMIT
    raise KeyboardInterrupt

  monkeypatch.setattr(schema, "upgrade", killed)
  with pytest.raises(KeyboardInterrupt):
    Ledger(path)
  assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1
  assert _dump(path) == before  # the transaction rolled back: nothing half-done
  monkeypatch.setattr(schema, "upgrade", real)
  with Ledger(path) as led:
    assert led.rows("PRAGMA user_version") == [{"user_version": 4}]  # 1 -> 2 -> 3 -> 4


def test_a_writer_open_before_the_upgrade_keeps_writing_valid_rows(tmp_path):
  path = _v1_copy(tmp_path)
  old = sqlite3.connect(path, isolation_level=None)  # a schema-1 jaxgreen, mid-run
  old.execute("SELECT COUNT(*) FROM trials").fetchone()
  Ledger(path).close()  # another process upgrades the file
  # The statements schema-1 code runs: named columns, and statuses schema 2 allows.
  old.execute("INSERT OR IGNORE INTO trials (id, run_id, experiment, name, hparams, "
              "status, started) VALUES ('late', 'r', 'v1', 'late', '{}', 'running', 1.0)")
  old.execute("UPDATE trials SET status = 'stopped', error = 'preempted: SIGTERM', "
              "ended = 2.0, energy_j = NULL, energy_source = NULL WHERE id = 'late'")
  old.close()
  with Ledger(path, readonly=True) as led:
    assert led.integrity() == "ok"
    assert led.rows("SELECT status, heartbeat FROM trials WHERE id = 'late'") == [
        {"status": "stopped", "heartbeat": None}]


def test_a_jaxgreen_that_reads_only_v1_refuses_a_v4_ledger(tmp_path, monkeypatch):
  path = tmp_path / "new.sqlite"
  with Experiment("v4", ledger=path) as exp, exp.trial():
    _step()(jnp.ones(N))
  digest = _digest(path)
  monkeypatch.setattr(ledger, "SCHEMA_VERSION", 1)  # the check of the schema-1 release
  for readonly in (False, True):
    with pytest.raises(LedgerError, match=r"schema 4, newer than this jaxgreen reads "
                                          r"\(1\); upgrade jaxgreen"):
      Ledger(path, readonly=readonly)
  assert _digest(path) == digest  # refused before anything was written


def _v2_copy(tmp_path) -> pathlib.Path:
  """The v1 ledger as the schema-2 release left it after its upgrade."""
  path = _v1_copy(tmp_path)
  c = sqlite3.connect(path, isolation_level=None)
  c.execute("BEGIN IMMEDIATE")
  schema._v1_to_v2(c)
  c.execute("COMMIT")
  c.close()
  return path


def test_a_v2_ledger_upgrades_to_v3_in_place_with_every_row_intact(tmp_path):
  path = _v2_copy(tmp_path)
  before = _dump(path)
  assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
  with Ledger(path, readonly=True) as led:  # read as it is: no throughput columns yet
    old_tag = led.price_tag("v1")
    (tid,) = [r["id"] for r in led.rows("SELECT id FROM trials WHERE name = 'lr=0.1'")]
    assert {k: led.trial_row(tid)[k] for k in schema.THROUGHPUT_COLUMNS} == dict.fromkeys(
        schema.THROUGHPUT_COLUMNS)
  assert _dump(path) == before  # a reader never upgrades
  with Ledger(path) as led:
    assert led.rows("PRAGMA user_version") == [{"user_version": 4}]  # 2 -> 3 -> 4
    assert led.integrity() == "ok"
    tag = led.price_tag("v1")
  after = _dump(path)
  for table in ("runs", "signatures", "steps", "metrics"):
    assert after[table] == before[table], table
  assert [r[:13] for r in after["trials"]] == before["trials"]  # the 13 v2 columns
  assert {r[13:] for r in after["trials"]} == {(None,) * 16}  # not measured, not known
  assert "upgraded_from_2" in {k for k, _ in after["meta"]}
  assert tag.to_dict() == old_tag.to_dict()
  with Ledger(path):  # a second open upgrades nothing again
    pass
  assert _dump(path) == after


def test_a_trials_throughput_is_stored_and_shown_by_reports(tmp_path):
  path = tmp_path / "tp.sqlite"
  with Experiment("tp", ledger=path) as exp, exp.trial() as trial:
    _step()(jnp.ones(N))
  # 10 timed steps of 2 N FPO in 0.5 s on one device, against a peak of 1000 FLOP/s
  tp = Throughput(steps=10, seconds=0.5, fpo=10 * 2 * N, fpo_per_device=10 * 2 * N,
                  chip="h100", dtype="bf16", peak=1e3, peak_source="given")
  with Ledger(path) as led:
    led.write_trial(trial.id, throughput=tp)
    with pytest.raises(ValueError, match="must hold 8 values"):
      led.write_trial(trial.id, throughput=(10, 0.5))
  with Ledger(path, readonly=True) as led:
    row = led.trial_row(trial.id)
    (cost,) = led.price_tag("tp").trials
  assert tuple(row[k] for k in schema.THROUGHPUT_COLUMNS) == (
      10, 0.5, str(10 * 2 * N), 10 * 2 * N, "h100", "bf16", 1e3, "given")
  assert cost.fpo_per_s_per_device == 10 * 2 * N / 0.5  # 320 FPO/s
  assert cost.mfu == 10 * 2 * N / 0.5 / 1e3  # 0.32 of the peak


# -- preempted ---------------------------------------------------------------------------


def test_preempted_is_a_status_of_its_own_and_counts_in_h(tmp_path):
  step = _step()
  exp = Experiment("pre", ledger=tmp_path / "g.sqlite")
  x = jnp.ones(N)
  with exp.trial({"lr": 0.1}):
    step(x)
  trial = exp.trial({"lr": 0.2}).start()
  step(x)
  step(x)
  exp._preempt(1.0)  # what the SIGTERM handler does
  assert trial.status == "preempted"
  other = exp.trial({"lr": 0.3}).start()
  other.end("preempted", "spot instance reclaimed")  # a user's own handler may say so
  tag = exp.price_tag()
  assert [(t.status, t.error) for t in tag.trials] == [
      ("completed", None), ("preempted", "SIGTERM"), ("preempted", "spot instance reclaimed")]
  assert (tag.h, tag.train_fpo) == (3, 3 * 2 * N)  # 3 calls of N MUL + N ADD
  text = tag.table()
  assert "3 (1 completed, 2 preempted)" in text
  assert "lr=0.2 (preempted): SIGTERM" in text
  assert tag.to_dict()["trials"][1]["status"] == "preempted"
  with pytest.raises(ValueError, match="end\\(status='paused'\\).*'preempted'"):
    exp.trial().start().end("paused")
  exp.close()


# -- crashed on another host ---------------------------------------------------------------


def test_a_silent_trial_of_another_host_is_reported_crashed(tmp_path):
  led = Ledger(tmp_path / "g.sqlite")
  now = time.time()
  trials = (("dead", now - 7200, 3600.0),      # silent 2 h, timeout 1 h: crashed
            ("writing", now - 10, 3600.0),     # wrote 10 s ago: running
            ("slow", now - 7200, 3 * 3600.0),  # flush windows of 1 h: timeout 3 h
            ("old", None, None))               # no heartbeat (schema-1 writer): unknown

  def fill(c):
    c.execute("INSERT INTO runs (id, experiment, host, pid, started) "
              "VALUES ('r', 'e', 'another-host', 1, ?)", (now - 9000,))
    for tid, beat, stale in trials:
      c.execute("INSERT INTO trials (id, run_id, experiment, name, status, started, "
                "heartbeat, stale_after) VALUES (?, 'r', 'e', ?, 'running', ?, ?, ?)",
                (tid, tid, now - 9000, beat, stale))

  led.write(fill)
  tag = led.price_tag("e")
  assert {t.name: t.status for t in tag.trials} == {
      "dead": "crashed", "writing": "running", "slow": "running", "old": "running"}
  assert tag.h == 4 and "4 (3 running, 1 crashed)" in tag.table()  # still counted in H
  led.close()


def test_every_committed_write_stamps_the_heartbeat(tmp_path):
  step = _step()
  exp = Experiment("beat", ledger=tmp_path / "g.sqlite", flush_steps=2, flush_seconds=7200)
  assert exp.stale_after == 3 * 7200  # 3 flush windows, when longer than the 1 h floor
  x = jnp.ones(N)

  def beat():
    (row,) = exp.ledger.rows("SELECT heartbeat, stale_after FROM trials")
    return row["heartbeat"], row["stale_after"]

  with exp.trial() as trial:
    first, stale = beat()
    assert stale == 3 * 7200
    time.sleep(0.02)
    step(x)
    assert beat()[0] == first  # 1 call: not flushed yet, nothing written
    step(x)  # the 2nd call flushes: the heartbeat moves
    second = beat()[0]
    assert second > first
    time.sleep(0.02)
    trial.log(2, val_acc=0.5)
    assert beat()[0] > second
  assert Experiment("floor", ledger=None, flush_seconds=30).stale_after == 3600
  exp.close()


def test_the_running_trial_of_the_v1_ledger_is_crashed_once_silent(tmp_path, monkeypatch):
  path = _v1_copy(tmp_path)
  Ledger(path).close()  # upgraded: its heartbeat is its last step row's time
  with Ledger(path, readonly=True) as led:
    (beat,) = [r["heartbeat"] for r in led.rows(
        "SELECT heartbeat FROM trials WHERE status = 'running'")]

    def status_at(t: float) -> str:
      monkeypatch.setattr(pricetag, "time", types.SimpleNamespace(
          time=lambda: t, strftime=time.strftime, localtime=time.localtime))
      (trial,) = [c for c in led.price_tag("v1").trials if c.name == "lr=1.0"]
      return trial.status

    assert status_at(beat + 60) == "running"  # host "old-host" wrote a minute ago
    assert status_at(beat + schema.CRASH_TIMEOUT_S + 1) == "crashed"


def test_reports_read_a_v1_file_as_it_is_and_merge_upgrades_only_the_output(tmp_path, capsys):
  from jaxgreen._src.account import merge
  from jaxgreen._src.cli import main

  old = _v1_copy(tmp_path)
  digest = _digest(old)
  assert main(["ledger", "report", str(old), "--json"]) == 0
  (d,) = json.loads(capsys.readouterr().out)
  assert (d["H_trials"], d["train_fpo"]) == (4, 11 * 2 * N)  # 11 train calls of 2 N FPO
  new = tmp_path / "new.sqlite"
  exp = Experiment("v1", ledger=new)
  trial = exp.trial({"lr": 3.0}).start()
  _step()(jnp.ones(N))
  exp._preempt(1.0)
  exp.close()
  added = merge([old, new], tmp_path / "all.sqlite")
  assert added["trials"] == 4 + 1 and added["steps"] == 8 + 1
  assert _digest(old) == digest  # sources are only read, never upgraded
  with Ledger(tmp_path / "all.sqlite", readonly=True) as led:
    tag = led.price_tag("v1")
  assert trial.status == "preempted"
  assert (tag.h, tag.train_fpo) == (5, 12 * 2 * N)  # the v1 file's 11 calls and 1 more
  # (lr=1.0, still running in the v1 file, is judged by its heartbeat: tested above)
  assert {t.name: t.status for t in tag.trials if t.name != "lr=1.0"} == {
      "lr=0.1": "completed", "lr=10.0": "failed", "lr=0.01": "stopped",
      "lr=3.0": "preempted"}


def test_a_v3_ledger_upgrades_to_v4_with_carbon_and_model_fpo_unknown(tmp_path):
  path = _v2_copy(tmp_path)
  c = sqlite3.connect(path, isolation_level=None)  # as the schema-3 release left it
  c.execute("BEGIN IMMEDIATE")
  for name, kind in schema._THROUGHPUT:
    c.execute(f"ALTER TABLE trials ADD COLUMN {name} {kind}")
  c.execute("PRAGMA user_version = 3")
  c.execute("COMMIT")
  c.close()
  before = _dump(path)
  with Ledger(path, readonly=True) as led:
    old_tag = led.price_tag("v1")
  with Ledger(path) as led:
    assert led.rows("PRAGMA user_version") == [{"user_version": 4}]
    assert led.integrity() == "ok"
    tag = led.price_tag("v1")
  after = _dump(path)
  n = len(before["trials"][0])
  assert [r[:n] for r in after["trials"]] == before["trials"]  # every v3 column kept
  added = len(schema.CARBON_COLUMNS) + len(schema.MODEL_COLUMNS)
  assert {r[n:] for r in after["trials"]} == {(None,) * added}  # not known
  assert "upgraded_from_3" in {k for k, _ in after["meta"]}
  assert tag.to_dict() == old_tag.to_dict()
  assert tag.co2e()[0] is None and all(t.carbon is None for t in tag.trials)
