"""The ledger under threads, signals and failed writes: no step lost, none counted twice."""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import jax
import jax.numpy as jnp
import pytest

from benchmarks.reliability import Child
from jaxgreen._src.account import Experiment, Ledger, LedgerError, track
from jaxgreen._src.cli import main

N = 8  # elements of the toy step's input: N MUL + N ADD per call


def _step():
  return track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")


def _steps_in(path) -> int:
  with Ledger(path, readonly=True) as led:
    return led.rows("SELECT COALESCE(SUM(steps), 0) AS n FROM steps")[0]["n"]


# -- threads ---------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["flush", "report"])
def test_flush_or_report_from_another_thread_loses_no_step(tmp_path, action):
  path = tmp_path / "g.sqlite"
  step = _step()
  exp = Experiment("threads", ledger=path, flush_steps=1000, flush_seconds=1e9)
  x = jnp.ones(N)
  stop = threading.Event()
  errors = []

  def dashboard():
    try:
      while not stop.is_set():
        exp.flush() if action == "flush" else exp.report()
    except BaseException as e:  # pragma: no cover - reported by the assert below
      errors.append(e)

  ran = 3000
  with exp.trial():
    th = threading.Thread(target=dashboard)
    th.start()
    try:
      for _ in range(ran):
        step(x)
    finally:
      stop.set()
      th.join(timeout=60)
  assert errors == []
  assert _steps_in(path) == ran  # every step that ran, once
  assert exp.price_tag().train_fpo == ran * 2 * N
  exp.close()


def test_steps_of_worker_threads_are_attributed_to_the_trial(tmp_path):
  step = _step()
  exp = Experiment("workers", ledger=tmp_path / "g.sqlite")
  x = jnp.ones(N)
  with exp.trial() as trial:
    step(x)  # the trial's own thread
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      list(pool.map(lambda _: step(x), range(10)))  # threads do not inherit the context
  assert trial.steps == 11
  (t,) = exp.price_tag().trials
  assert (t.train_steps, t.train_fpo) == (11, 11 * 2 * N)
  exp.close()


# -- failed writes and interruptions ------------------------------------------------------


def test_a_failed_end_write_of_a_dropped_trial_is_retried(monkeypatch, tmp_path):
  step = _step()
  exp = Experiment("dropped", ledger=tmp_path / "g.sqlite")
  real_write = exp.ledger.write

  def broken(fn, timeout=None):
    raise sqlite3.OperationalError("database is locked")

  x = jnp.ones(N)
  with pytest.warns(UserWarning, match="is busy") as caught:
    for _ in range(3):
      trial = exp.trial().start()
      for _ in range(5):
        step(x)
      monkeypatch.setattr(exp.ledger, "write", broken)
      trial.end()  # the ledger is locked: the end is kept, training goes on
      monkeypatch.setattr(exp.ledger, "write", real_write)
  assert len(caught) == 1  # one warning, not one per trial
  del trial  # the user's variable moves on: nothing else refers to the 3 trials
  gc.collect()
  exp.close()  # an explicit close (or the exit handler) writes what is owed
  with Ledger(tmp_path / "g.sqlite", readonly=True) as led:
    statuses = [r["status"] for r in led.rows("SELECT status FROM trials")]
  assert _steps_in(tmp_path / "g.sqlite") == 15
  assert statuses == ["completed"] * 3  # the status each end asked for


def test_an_interrupt_just_after_commit_never_counts_twice(monkeypatch, tmp_path):
  step = _step()
  exp = Experiment("sigint", ledger=tmp_path / "g.sqlite", flush_steps=1)
  real_write = exp.ledger.write
  calls = []

  def commit_then_interrupt(fn, timeout=None):
    out = real_write(fn, timeout=timeout)
    if not calls:
      calls.append(1)
      raise KeyboardInterrupt  # Ctrl-C lands after COMMIT, before the buffer is cleared
    return out

  x = jnp.ones(N)
  with pytest.raises(KeyboardInterrupt):
    with exp.trial():
      step(x)
      step(x)
      monkeypatch.setattr(exp.ledger, "write", commit_then_interrupt)
      step(x)  # its flush commits 1 step (2 before it were flushed too), then Ctrl-C
  monkeypatch.setattr(exp.ledger, "write", real_write)
  assert _steps_in(tmp_path / "g.sqlite") == 3  # the end wrote nothing twice
  (t,) = exp.price_tag().trials
  assert (t.status, t.train_fpo) == ("failed", 3 * 2 * N)
  exp.close()


class _InterruptAfterBegin:
  """A connection whose ``BEGIN IMMEDIATE`` succeeds, then Ctrl-C arrives."""

  def __init__(self, conn):
    self.conn, self.armed = conn, True

  def execute(self, sql, *args):
    out = self.conn.execute(sql, *args)
    if sql.startswith("BEGIN") and self.armed:
      self.armed = False
      raise KeyboardInterrupt
    return out

  def __getattr__(self, name):
    return getattr(self.conn, name)


def test_an_interrupt_during_begin_never_leaves_a_transaction_open(tmp_path):
  path = tmp_path / "g.sqlite"
  led = Ledger(path)
  real = led.conn
  led.conn = _InterruptAfterBegin(real)
  with pytest.raises(KeyboardInterrupt):
    led.write(lambda c: c.execute("INSERT INTO meta VALUES ('a', '1')"))
  assert not real.in_transaction  # the write lock is released at once
  other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
  other.execute("BEGIN IMMEDIATE")  # another process can write
  other.execute("ROLLBACK")
  other.close()
  led.write(lambda c: c.execute("INSERT INTO meta VALUES ('b', '2')"))  # so can this one
  assert led.rows("SELECT key FROM meta WHERE key IN ('a', 'b')") == [{"key": "b"}]
  led.conn = real
  led.close()


# -- signals ---------------------------------------------------------------------------

# Child scripts start with Python's own signal handlers even when the test runner was
# started with SIGINT ignored (nohup ... &, some CI runners).
_RESET = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n")

_PREEMPTED = _RESET + textwrap.dedent("""
    import os, signal, sys
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp
    from jaxgreen._src.account import Experiment, track
    path, mode = sys.argv[1], sys.argv[2]
    step = track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
    if mode == "handler":  # the user's own handler: runs after jaxgreen's
        def bye(signum, frame):
            print("steps", step.tracker.steps, flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, bye)
    exp = Experiment("preempt", ledger=path, flush_steps=10**6, flush_seconds=1e9)
    x = jnp.ones(8)
    with exp.trial() as trial:
        i = 0
        while i < 10**6:
            step(x)
            i += 1
            if i % 50 == 0:
                print(i, flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["default", "handler"])
def test_sigterm_flushes_ends_the_trial_and_exits_as_before(tmp_path, mode):
  script = tmp_path / "preempted.py"
  script.write_text(_PREEMPTED)
  path = tmp_path / "g.sqlite"
  child = Child([str(script), str(path), mode])
  seen = 0
  while seen < 200:
    seen = int(child.line(timeout=120))
  child.proc.send_signal(signal.SIGTERM)
  rest = ""
  with contextlib.suppress(RuntimeError):  # the child's end
    while True:
      rest += child.line(timeout=120) + "\n"
  rc = child.close(timeout=60)
  with Ledger(path, readonly=True) as led:
    (trial,) = led.rows("SELECT status, error FROM trials")
  recorded = _steps_in(path)
  assert (trial["status"], trial["error"]) == ("preempted", "SIGTERM")
  if mode == "default":
    assert rc == -signal.SIGTERM  # killed by the signal, as without jaxgreen
    assert recorded >= seen  # nothing unflushed was lost (flush_steps is 10**6)
  else:
    assert rc == 3  # the user's handler ran and chose the exit code
    ran = int(rest.split("steps")[1])
    assert recorded == ran  # exactly the steps that ran


# -- busy, full, read-only and damaged ledgers ---------------------------------------------


@contextlib.contextmanager
def _small_disk(tmp_path, size="1m"):
  """A small tmpfs at tmp_path/'disk', or None where mounting is not permitted."""
  mnt = tmp_path / "disk"
  mnt.mkdir()
  ok = False
  if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
    try:
      ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                          capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
      ok = False
  try:
    yield mnt if ok else None
  finally:
    if ok:
      subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)


def test_a_locked_ledger_never_stalls_trial_start_log_or_end(tmp_path):
  path = tmp_path / "g.sqlite"
  step = _step()
  exp = Experiment("locked", ledger=path, flush_steps=2)
  x = jnp.ones(N)
  other = sqlite3.connect(path, isolation_level=None)
  other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
  t0 = time.perf_counter()
  with pytest.warns(UserWarning, match="is busy") as caught:
    with exp.trial() as trial:
      for i in range(5):
        step(x)
        trial.log(i, val_acc=i / 10)
  stalled = time.perf_counter() - t0
  other.execute("ROLLBACK")
  other.close()
  assert stalled < 5.0  # the ledger's own timeout is 60 s
  assert len(caught) == 1  # one warning
  assert _steps_in(path) == 0  # nothing written yet, nothing lost either
  exp.close()  # the one call that waits
  with Ledger(path, readonly=True) as led:
    (t,) = led.rows("SELECT status FROM trials")
    metrics = led.rows("SELECT COUNT(*) AS n FROM metrics")[0]["n"]
  assert (t["status"], _steps_in(path), metrics) == ("completed", 5, 5)


def test_a_full_disk_never_stops_training_and_close_names_it(tmp_path):
  with _small_disk(tmp_path) as disk:
    path = (disk or tmp_path) / "g.sqlite"
    step = _step()
    exp = Experiment("full", ledger=path, flush_steps=1)
    x = jnp.ones(N)
    trial = exp.trial().start()
    step(x)  # committed
    if disk is not None:  # fill the small tmpfs
      filler = disk / "filler"
      with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
          f.write(b"\0" * 65536)
          f.flush()
    else:  # no permission to mount: SQLite's cap on the file's size makes it full
      pages = exp.ledger.conn.execute("PRAGMA page_count").fetchone()[0]
      exp.ledger.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.warns(UserWarning, match="disk is full") as caught:
      for _ in range(50):
        step(x)  # every flush fails: training goes on
      trial.log(1, val_acc=0.5)
      trial.end()
    assert len(caught) == 1
    with pytest.raises(LedgerError, match="full.*free disk space"):
      exp.close()  # the explicit close names the problem; rows are kept
    if disk is not None:
      filler.unlink()
    else:
      exp.ledger.conn.execute("PRAGMA max_page_count = 1073741823")
    exp.close()  # space freed: everything is written
    with Ledger(path, readonly=True) as led:
      (t,) = led.rows("SELECT status FROM trials")
      metrics = led.rows("SELECT COUNT(*) AS n FROM metrics")[0]["n"]
    assert (t["status"], _steps_in(path), metrics) == ("completed", 51, 1)


def test_reports_of_a_ledger_in_a_read_only_folder(tmp_path, capsys):
  with _small_disk(tmp_path) as disk:
    folder = disk or tmp_path / "disk"
    path = folder / "g.sqlite"
    step = _step()
    with Experiment("ro", ledger=path) as exp, exp.trial():
      for _ in range(3):
        step(jnp.ones(N))
    if disk is not None:
      subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, timeout=20)
    elif os.geteuid() == 0:  # pragma: no cover - root in a container without mount rights
      pytest.skip("root ignores folder permissions and mounting is not permitted here")
    else:
      os.chmod(folder, 0o555)
    try:
      assert main(["ledger", "report", str(path), "--json"]) == 0
      (d,) = json.loads(capsys.readouterr().out)
      assert (d["H_trials"], d["train_fpo"]) == (1, 3 * 2 * N)
      with pytest.raises(LedgerError, match="read-only"):
        Experiment("more", ledger=path)  # writing there is one clear error
    finally:
      if disk is None:
        os.chmod(folder, 0o755)


def test_a_damaged_ledger_is_one_clear_error(tmp_path, capsys):
  path = tmp_path / "g.sqlite"
  step = _step()
  exp = Experiment("damaged", ledger=path, flush_steps=1)
  with exp.trial() as trial:
    for i in range(200):
      step(jnp.ones(N))
      trial.log(i, val_acc=0.5)
  exp.close()
  size = path.stat().st_size
  with open(path, "r+b") as f:  # garbage over every other page's cells
    for page in range(2, size // 4096, 2):
      f.seek(page * 4096 + 100)
      f.write(bytes(range(256)) * 2)
  with pytest.raises(LedgerError, match="damaged.*recover"):
    Experiment("damaged", ledger=path)  # never writes new trials into it
  assert main(["ledger", "report", str(path)]) == 2
  err = capsys.readouterr().err
  assert "malformed" in err and "recover" in err and len(err.strip().splitlines()) == 1


# -- crashed trials -------------------------------------------------------------------------


def test_a_trial_whose_process_died_is_reported_crashed(tmp_path):
  gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True, timeout=60)
  pid = int(gone.stdout)  # a process that has exited
  host = socket.gethostname()
  led = Ledger(tmp_path / "g.sqlite")

  def fill(c):
    for rid, h, p in (("dead", host, pid), ("alive", host, os.getpid()),
                      ("elsewhere", "another-host", pid)):
      c.execute("INSERT INTO runs (id, experiment, host, pid, started) "
                "VALUES (?, 'e', ?, ?, ?)", (rid, h, p, time.time() - 5))
      c.execute("INSERT INTO trials (id, run_id, experiment, name, status, started) "
                "VALUES (?, ?, 'e', ?, 'running', ?)", (rid, rid, rid, time.time()))

  led.write(fill)
  tag = led.price_tag("e")
  assert {t.name: t.status for t in tag.trials} == {
      "dead": "crashed", "alive": "running", "elsewhere": "running"}  # others: unknown
  assert tag.h == 3 and "3 (2 running, 1 crashed)" in tag.table()  # still counted in H
  led.close()


def test_a_resumed_trial_continues_its_cumulative_fpo(tmp_path):
  path = tmp_path / "g.sqlite"
  step = _step()
  x = jnp.ones(N)
  exp = Experiment("resume", ledger=path)
  with exp.trial({"lr": 0.1}) as t:
    for _ in range(3):
      step(x)
    t.log(3, val_acc=0.5)
    saved = t.id  # stored with the checkpoint
    t.stop_early("preempted: SIGTERM")
  exp.close()
  exp = Experiment("resume", ledger=path)  # the job restarts from its checkpoint
  with pytest.raises(ValueError, match="resume='nope'.*no trial"):
    exp.trial(resume="nope")
  with exp.trial(resume=saved) as t:
    assert (t.id, t.hparams, t.steps, t.train_fpo) == (saved, {"lr": 0.1}, 3, 3 * 2 * N)
    for _ in range(2):
      step(x)
    t.log(5, val_acc=0.6)
  (c,) = exp.price_tag().trials  # one trial: counted once in H
  assert (c.status, c.error, c.train_steps, c.train_fpo) == ("completed", None, 5, 5 * 2 * N)
  rows = exp.ledger.rows("SELECT step, train_fpo FROM metrics ORDER BY step")
  assert [(r["step"], int(r["train_fpo"])) for r in rows] == [(3, 3 * 2 * N), (5, 5 * 2 * N)]
  exp.close()
  other = Experiment("another", ledger=path)
  with pytest.raises(ValueError, match="experiment 'resume'"):
    other.trial(resume=saved)
  other.close()


_INTERRUPTED = _RESET + textwrap.dedent("""
    import os, sys
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp
    from jaxgreen._src.account import Experiment, track
    step = track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
    exp = Experiment("sigint", ledger=sys.argv[1], flush_steps=1)  # a COMMIT every step
    x = jnp.ones(8)
    step(x)
    print("ready", flush=True)
    try:
        with exp.trial():
            while True:
                step(x)
    except KeyboardInterrupt:
        pass
    exp.close()
    print("steps", step.tracker.steps - 1, flush=True)
""")


@pytest.mark.slow
def test_ctrl_c_at_any_point_never_counts_a_step_twice(tmp_path):
  script = tmp_path / "interrupted.py"
  script.write_text(_INTERRUPTED)
  for i, delay in enumerate((0.05, 0.1, 0.15, 0.2, 0.25, 0.3)):
    path = tmp_path / f"g{i}.sqlite"
    child = Child([str(script), str(path)])
    assert child.line(timeout=120) == "ready"
    time.sleep(delay)
    child.proc.send_signal(signal.SIGINT)
    ran = int(child.until("steps", timeout=60).split()[1])  # close() succeeded
    child.close(timeout=60)
    assert _steps_in(path) == ran  # 14 of 28 such runs over-counted before
