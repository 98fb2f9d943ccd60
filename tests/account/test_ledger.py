"""The ledger: durable, concurrent, mergeable; trials and their price tag."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import jax
import jax.numpy as jnp
import pytest

from jaxgreen._src.account import Experiment, Ledger, LedgerError, energy, merge, track
from jaxgreen._src.cli import main

N = 8  # elements of the toy step's input


def _step():
  return track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")  # N MUL + N ADD per call


def _steps_in(path) -> int:
  with Ledger(path, readonly=True) as led:
    return led.rows("SELECT COALESCE(SUM(steps), 0) AS n FROM steps")[0]["n"]


# -- trials ------------------------------------------------------------------------


def test_trial_statuses_all_count_in_h(tmp_path):
  step = _step()
  exp = Experiment("statuses", ledger=tmp_path / "g.sqlite")
  x = jnp.ones(N)
  with exp.trial({"lr": 0.1}):
    step(x)
  with pytest.raises(RuntimeError, match="diverged"):
    with exp.trial({"lr": 10.0}):
      step(x)
      raise RuntimeError("diverged")
  with exp.trial({"lr": 0.01}) as t:
    step(x)
    step(x)
    t.stop_early("no improvement")
  tag = exp.price_tag()
  assert [t.status for t in tag.trials] == ["completed", "failed", "stopped"]
  assert tag.h == 3
  assert tag.train_fpo == 4 * 2 * N  # 4 calls of N MUL + N ADD, failed trial included
  assert tag.train_examples == 4 * N
  with Ledger(tmp_path / "g.sqlite", readonly=True) as led:
    errors = [r["error"] for r in led.rows("SELECT error FROM trials ORDER BY started")]
  assert errors == [None, "RuntimeError: diverged", "no improvement"]


def test_steps_are_committed_every_flush_window(tmp_path):
  path = tmp_path / "g.sqlite"
  step = _step()
  exp = Experiment("flush", ledger=path, flush_steps=5, flush_seconds=1e9)
  x = jnp.ones(N)
  with exp.trial():
    for _ in range(12):
      step(x)
    assert _steps_in(path) == 10  # two windows of 5 committed, 2 steps pending
  assert _steps_in(path) == 12  # the trial end commits the rest


def test_a_busy_ledger_never_stalls_a_step(tmp_path):
  path = tmp_path / "g.sqlite"
  step = _step()
  exp = Experiment("busy", ledger=path, flush_steps=5, flush_seconds=1e9)
  x = jnp.ones(N)
  other = sqlite3.connect(path, isolation_level=None)
  with exp.trial():
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    t0 = time.perf_counter()
    for _ in range(5):
      step(x)  # the 5th call tries to flush, finds the ledger busy, keeps the steps
    stalled = time.perf_counter() - t0
    other.execute("COMMIT")
    assert _steps_in(path) == 0  # nothing written yet, nothing lost either
  other.close()
  assert stalled < 5.0  # the ledger's own timeout is 60 s; a step waits at most 0.05 s
  assert _steps_in(path) == 5  # the trial end writes the buffered window


def test_log_records_cumulative_fpo(tmp_path):
  step = _step()
  exp = Experiment("log", ledger=tmp_path / "g.sqlite", flush_steps=1000)
  x = jnp.ones(N)
  with exp.trial() as t:
    for i in range(1, 7):
      step(x)
      if i % 3 == 0:
        t.log(i, val_acc=i / 10)
    with pytest.raises(TypeError, match="must be a number"):
      t.log(7, val_acc="high")
  with Ledger(tmp_path / "g.sqlite", readonly=True) as led:
    rows = led.rows("SELECT step, train_fpo, train_examples, value FROM metrics ORDER BY step")
  assert [(r["step"], int(r["train_fpo"]), r["train_examples"]) for r in rows] == [
      (3, 3 * 2 * N, 3 * N), (6, 6 * 2 * N, 6 * N)]  # calls · (N MUL + N ADD)


def test_bad_arguments_name_the_fix(tmp_path):
  with pytest.raises(ValueError, match="flush_steps=0"):
    Experiment("x", ledger=None, flush_steps=0)
  with pytest.raises(ValueError, match="name=''"):
    Experiment("", ledger=None)
  with pytest.raises(ValueError, match="flush_seconds='30'"):
    Experiment("x", ledger=None, flush_seconds="30")
  with pytest.raises(TypeError, match="ledger=123"):
    Experiment("x", ledger=123)
  exp = Experiment("x", ledger=None)
  with pytest.raises(TypeError, match="hparams="):
    exp.trial([0.1])
  other = tmp_path / "other.sqlite"
  sqlite3.connect(other).execute("CREATE TABLE users (id)").connection.commit()
  with pytest.raises(LedgerError, match="another program"):
    Ledger(other)
  newer = tmp_path / "newer.sqlite"
  Ledger(newer).close()
  sqlite3.connect(newer).execute("PRAGMA user_version = 99")
  with pytest.raises(LedgerError, match="upgrade jaxgreen"):
    Ledger(newer)
  text = tmp_path / "notes.sqlite"
  text.write_text("not a database, " * 100)
  with pytest.raises(LedgerError, match="not a SQLite ledger"):
    Ledger(text)
  assert text.read_text().startswith("not a database")  # the user's file is untouched
  with pytest.raises(FileNotFoundError, match="no ledger"):
    Ledger(tmp_path / "missing.sqlite", readonly=True)


# -- concurrency and crashes ---------------------------------------------------------

_WORKER = textwrap.dedent("""
    import os, sys
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp
    from jaxgreen._src.account import Experiment, track
    path, steps, flush = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    step = track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
    exp = Experiment("shared", ledger=path, flush_steps=flush, flush_seconds=1e9)
    x = jnp.ones(8)
    forever = steps < 0
    with exp.trial({"pid": os.getpid()}) as trial:
        i = 0
        while forever or i < steps:
            step(x)
            i += 1
            if forever:
                print(i, flush=True)
""")


def _worker(tmp_path, *args, **kw):
  script = tmp_path / "worker.py"
  if not script.exists():  # written once: rewriting it races with workers reading it
    script.write_text(_WORKER)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.getcwd())
  kw.setdefault("stderr", subprocess.DEVNULL)
  return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env,
                          text=True, **kw)


def lines_of(proc, timeout=120.0):
  """The output lines of ``proc`` as ints, each awaited at most ``timeout`` seconds (a
  reader thread; the process is killed and the test fails if one does not come)."""
  got: queue.Queue = queue.Queue()

  def read():
    for line in proc.stdout:
      got.put(line)
    got.put(None)

  threading.Thread(target=read, daemon=True).start()
  while True:
    try:
      line = got.get(timeout=timeout)
    except queue.Empty:
      proc.kill()
      proc.wait(timeout=60)
      pytest.fail(f"the writer process printed nothing for {timeout} s")
    if line is None:
      return
    yield int(line)


@pytest.mark.slow
def test_eight_processes_write_one_ledger(tmp_path):
  path = tmp_path / "shared.sqlite"
  procs = [_worker(tmp_path, path, 40, 2) for _ in range(8)]  # 20 commits each
  assert [p.wait(timeout=120) for p in procs] == [0] * 8
  with Ledger(path, readonly=True) as led:
    assert led.integrity() == "ok"
    assert led.rows("SELECT COUNT(*) AS n FROM runs")[0]["n"] == 8
    statuses = [r["status"] for r in led.rows("SELECT status FROM trials")]
    tag = led.price_tag("shared")
  assert statuses == ["completed"] * 8
  assert _steps_in(path) == 8 * 40  # nothing lost
  assert tag.train_fpo == 8 * 40 * 2 * N  # processes · steps · (N MUL + N ADD)


@pytest.mark.slow
def test_kill_9_loses_at_most_the_unflushed_window(tmp_path):
  path = tmp_path / "killed.sqlite"
  window = 10
  proc = _worker(tmp_path, path, -1, window, stdout=subprocess.PIPE)
  seen = 0
  for seen in lines_of(proc):
    if seen >= 3 * window + 5:
      break
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=30)
  with Ledger(path, readonly=True) as led:
    assert led.integrity() == "ok"
    (trial,) = led.rows("SELECT status FROM trials")
    (reported,) = led.price_tag().trials
  recorded = _steps_in(path)
  assert trial["status"] == "running"  # it never ended, but it is there (counts in H)
  assert reported.status == "crashed"  # its process is gone: never 'running' forever
  assert recorded % window == 0  # only whole flushes, never a torn write
  # The child ran >= seen steps; at most one window (plus a commit in flight) is lost.
  assert recorded >= seen - (2 * window - 1)
  exp = Experiment("after", ledger=path)
  with exp.trial():
    _step()(jnp.ones(N))
  exp.close()
  assert _steps_in(path) == recorded + 1  # the file is still writable


# -- merge ---------------------------------------------------------------------------


def _ledger_with(path, name, calls):
  step = _step()
  exp = Experiment(name, ledger=path)
  with exp.trial({"calls": calls}):
    for _ in range(calls):
      step(jnp.ones(N))
  exp.close()


def test_merge_is_idempotent(tmp_path, capsys):
  a, b, out = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "out.sqlite"
  _ledger_with(a, "sweep", 3)
  _ledger_with(b, "sweep", 5)
  added = merge([a, b], out)
  assert added["trials"] == 2 and added["steps"] == 2
  again = merge([a, b, out], out)
  assert set(again.values()) == {0}  # nothing added twice
  assert main(["ledger", "merge", str(a), str(b), "-o", str(out)]) == 0
  assert "added 0 runs, 0 trials" in capsys.readouterr().out
  with Ledger(out, readonly=True) as led:
    tag = led.price_tag("sweep")
  assert tag.h == 2
  assert tag.train_fpo == (3 + 5) * 2 * N  # calls · (N MUL + N ADD)
  assert _steps_in(a) == 3  # the sources are untouched


def test_a_merge_interrupted_midway_adds_nothing_of_that_source(tmp_path):
  a, out = tmp_path / "a.sqlite", tmp_path / "out.sqlite"
  _ledger_with(a, "sweep", 3)
  Ledger(out).close()
  with sqlite3.connect(out) as c:  # the merge dies while copying steps (after trials)
    c.execute("CREATE TRIGGER boom BEFORE INSERT ON steps BEGIN "
              "SELECT RAISE(ABORT, 'killed'); END")
  with pytest.raises(LedgerError, match="killed"):
    merge([a], out)
  with Ledger(out, readonly=True) as led:
    assert led.rows("SELECT COUNT(*) AS n FROM trials")[0]["n"] == 0  # no 0-FPO trial
  with sqlite3.connect(out) as c:
    c.execute("DROP TRIGGER boom")
  assert merge([a], out)["steps"] == 1  # the rerun adds it whole
  with Ledger(out, readonly=True) as led:
    assert led.price_tag("sweep").train_fpo == 3 * 2 * N


def test_merge_prefers_the_ended_copy_of_a_trial(tmp_path):
  live, done, out = tmp_path / "live.sqlite", tmp_path / "done.sqlite", tmp_path / "o.sqlite"
  _ledger_with(done, "sweep", 2)
  merge([done], live)
  with sqlite3.connect(live) as c:  # as if copied while the trial was still running
    c.execute("UPDATE trials SET status = 'running', ended = NULL")
  merge([live], out)
  merge([done], out)
  merge([live], out)  # a stale copy never overwrites the ended trial
  with Ledger(out, readonly=True) as led:
    assert [r["status"] for r in led.rows("SELECT status FROM trials")] == ["completed"]


# -- price tag -----------------------------------------------------------------------


def _golden(path):
  """A small deterministic ledger: 3 trials, one train and one eval signature."""
  led = Ledger(path)

  def fill(c):
    c.execute("INSERT INTO runs VALUES ('r1', 'golden', 'host', 1, 0, 1, 'TPU v4', 4, "
              "'0.10.2', '0.1.0', 0)")
    for tid, name, status, start, end in (("a", "lr=0.1", "completed", 0, 10),
                                          ("b", "lr=1.0", "stopped", 10, 14),
                                          ("c", "lr=10", "failed", 14, 15)):
      c.execute("INSERT INTO trials (id, run_id, experiment, name, hparams, status, "
                "started, ended) VALUES (?, 'r1', 'golden', ?, '{}', ?, ?, ?)",
                (tid, name, status, start, end))
    c.execute("INSERT INTO signatures VALUES ('s1', 'step', 'f32[10,4]', '1000', '400', "
              "'600', 1, '{}')")
    c.execute("INSERT INTO signatures VALUES ('s2', 'eval', 'f32[5,4]', '100', '40', "
              "'60', 1, '{}')")
    for sid, tid, sig, kind, steps, ex in (("1", "a", "s1", "train", 20, 200),
                                           ("2", "a", "s1", "train", 10, 100),
                                           ("3", "a", "s2", "eval", 2, 10),
                                           ("4", "b", "s1", "train", 10, 100),
                                           ("5", "c", "s1", "train", 5, 50)):
      c.execute("INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, 0, 0)",
                (sid, tid, sig, kind, steps, ex))

  led.write(fill)
  return led


GOLDEN = """\
Price tag: golden

trial   status     steps    D  E train  train FPO  D eval  E eval  eval FPO     wall
------  ---------  -----  ---  -------  ---------  ------  ------  --------  -------
lr=0.1  completed     30  300      100     30,000      10      20       200  10.00 s
lr=1.0  stopped       10  100      100     10,000       0       -         0   4.00 s
lr=10   failed         5   50      100      5,000       0       -         0   1.00 s
D: examples; E: FPO per example

Equation 1: Cost(R) ∝ E · D · H     value
----------------------------------  ---------------------------------------------------
E: train FPO per example            100
D: train examples per trial (mean)  150
H: trials (every status)            3 (1 completed, 1 stopped, 1 failed)
E x D x H                           100 x 150 x 3 = 45,000
train FPO (sum over trials, steps)  45,000 (45.00 k)
eval FPO (inference, apart)         200 (200; E eval 20)
total FPO                           45,200 (45.20 k)
exact                               yes
wall-clock (sum over trials)        15.00 s
devices                             4 x TPU v4
energy (not FPO)                    3.16e-08 J (estimate, 6.98e-13 J/FLOP, v4 TDP/peak)
CO2e = kWh x gCO2e/kWh x PUE        unavailable: no region recorded (trial lr=0.1)"""


def test_report_golden(tmp_path, capsys):
  path = tmp_path / "golden.sqlite"
  _golden(path).close()
  with Ledger(path, readonly=True) as led:
    tag = led.price_tag("golden")
  # E = 45,000 FPO / 450 examples; D = 450 / 3 trials; E·D·H = 100·150·3 = 45,000
  assert (tag.e, tag.d, tag.h, tag.train_fpo) == (100.0, 150.0, 3, 45_000)
  assert tag.fpo == 45_000 + 2 * 100  # + eval: 2 calls of 100 FPO
  assert tag.table() == GOLDEN
  md = tag.markdown()
  assert md.startswith("## Price tag: golden\n\n| trial | status |")
  assert "| E x D x H | 100 x 150 x 3 = 45,000 |" in md
  assert main(["ledger", "report", str(path)]) == 0
  assert capsys.readouterr().out.strip() == GOLDEN
  assert main(["ledger", "report", str(path), "--json"]) == 0
  (d,) = json.loads(capsys.readouterr().out)
  assert (d["H_trials"], d["train_fpo"], d["eval_fpo"]) == (3, 45_000, 200)
  assert d["energy_label"].startswith("estimate")
  assert [t["status"] for t in d["trials"]] == ["completed", "stopped", "failed"]


def test_report_cli_errors(tmp_path, capsys):
  path = tmp_path / "golden.sqlite"
  _golden(path).close()
  assert main(["ledger", "report", str(tmp_path / "nope.sqlite")]) == 2
  assert "no ledger" in capsys.readouterr().err
  assert main(["ledger", "report", str(path), "--experiment", "other"]) == 2
  assert "'other' is not in" in capsys.readouterr().err


def test_processes_other_than_0_do_not_write(tmp_path, monkeypatch):
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  exp = Experiment("multi", ledger=tmp_path / "g.sqlite")
  with exp.trial():
    _step()(jnp.ones(N))
  assert not (tmp_path / "g.sqlite").exists()  # process 0 records the SPMD step once
  assert exp.price_tag().train_fpo == 2 * N  # still tracked in memory


def test_time_based_flush(tmp_path):
  path = tmp_path / "g.sqlite"
  step = _step()
  exp = Experiment("timed", ledger=path, flush_steps=10**6, flush_seconds=0.05)
  with exp.trial():
    step(jnp.ones(N))
    time.sleep(0.1)
    step(jnp.ones(N))  # past the 0.05 s window: commits both
    assert _steps_in(path) == 2


def test_energy_is_labelled_and_never_mixed_with_fpo(tmp_path):
  path = tmp_path / "golden.sqlite"
  led = _golden(path)
  led.write(lambda c: c.execute(
      "UPDATE trials SET energy_j = 12.5, energy_source = 'NVML' WHERE id = 'a'"))
  tag = led.price_tag("golden")
  a, b, _ = tag.trials
  assert energy.trial_energy(a) == (12.5, "measured (NVML)")
  joules, label = energy.trial_energy(b)
  assert joules == pytest.approx(10_000 * 192 / 275e12)  # FPO · W / (FLOP/s), TPU v4
  assert label.startswith("estimate")
  assert tag.energy()[1] == "mixed: 1 trial(s) measured (NVML), 2 estimate(s)"
  assert tag.fpo == 45_200  # energy never enters FPO
  cpu = dataclasses.replace(b, device_kind="cpu")
  assert energy.trial_energy(cpu)[0] is None
  assert energy.trial_energy(cpu, 1e-12)[0] == pytest.approx(10_000 * 1e-12)
  meter = energy.NvmlMeter()  # never raises, with or without NVML
  meter.start()
  assert (meter.stop() is None) == (not meter.available)
  led.close()


def test_price_tags_of_two_experiments_in_one_ledger(tmp_path):
  path = tmp_path / "green.sqlite"
  step = _step()
  for name, calls in (("a", 2), ("b", 5)):
    with Experiment(name, ledger=path) as exp, exp.trial():
      for _ in range(calls):
        step(jnp.ones(N))
  with Ledger(path, readonly=True) as led:
    assert led.price_tag("a").train_fpo == 2 * 2 * N  # 2 calls x (N MUL + N ADD)
    assert led.price_tag("b").train_fpo == 5 * 2 * N
    assert led.price_tag().train_fpo == 7 * 2 * N
    for bad in (0, -1.0, "7e-13"):
      with pytest.raises(ValueError, match="joules_per_flop="):
        led.price_tag("a", joules_per_flop=bad)


def test_report_before_any_trial_and_a_missing_folder(tmp_path):
  exp = Experiment("fresh", ledger=tmp_path / "green.sqlite")
  tag = exp.price_tag()  # the run is recorded: an experiment with no trial yet
  assert (tag.h, tag.fpo) == (0, 0)
  assert "Price tag: fresh" in exp.report()
  exp.close()
  with pytest.raises(FileNotFoundError, match="does not exist; create it"):
    Ledger(tmp_path / "missing" / "green.sqlite")


def test_reports_show_reasons_errors_inexact_notes_runs_and_d_zero(tmp_path, capsys):
  path = tmp_path / "g.sqlite"
  step = _step()
  x = jnp.ones(N)
  with Experiment("e", ledger=path) as exp:  # the first run of a script
    with exp.trial({"lr": 0.1}) as t:
      step(x)
      t.stop_early("no gain for 3 epochs")
    with pytest.raises(RuntimeError), exp.trial({"lr": 10.0}):
      raise RuntimeError("diverged")

  def unknown_trips(w):  # the trip count depends on a value: counted once, inexact
    return jax.lax.while_loop(lambda v: v.sum() < 100.0, lambda v: v * 2.0, w)

  no_batch = track(jax.jit(lambda w: w * 2.0))  # no batch argument, no examples=: D = 0
  loop = track(jax.jit(unknown_trips), examples=1)
  with Experiment("e", ledger=path) as exp, exp.trial({"lr": 1.0}):  # the script rerun
    no_batch(x)
    loop(x)
    assert exp.price_tag(run="this").h == 1 and exp.price_tag().h == 3
  with Ledger(path, readonly=True) as led:
    tag = led.price_tag("e")
    latest = led.price_tag("e", run="latest")
  assert tag.h == 3 and latest.h == 1 and latest.trials[0].name == "lr=1.0"
  text = tag.table()
  assert "Why trials failed or stopped:" in text
  assert "lr=0.1 (stopped): no gain for 3 epochs" in text
  assert "lr=10.0 (failed): RuntimeError: diverged" in text
  assert "exact                               NO (why: below)" in text
  assert "Why counts are not exact:\n  " in text and "unknown_trips: while loop" in text
  assert re.search(r"WARNING: D = 0 for the train step\(s\) \S*<lambda>: ", text)
  assert "runs (script executions)            2: " in text
  assert main(["ledger", "report", str(path), "--run", "latest", "--json"]) == 0
  (d,) = json.loads(capsys.readouterr().out)
  assert d["H_trials"] == 1 and d["warnings"] and d["inexact_notes"]
  assert d["trials"][0]["error"] is None
  assert main(["ledger", "report", str(path), "--run", "nope"]) == 2
  assert "matches no runs" in capsys.readouterr().err
