"""A shared ledger server: the same ledger in PostgreSQL, written live by every process.

The server comes from ``tests/conftest.py`` (``$JAXGREEN_TEST_POSTGRES`` or a
throwaway one); each test gets a fresh database.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import jax
import jax.numpy as jnp
import pytest
from test_ledger import _worker as ledger_worker  # the same writer script
from test_ledger import lines_of

from jaxgreen._src.account import (
  Experiment,
  Ledger,
  LedgerError,
  Throughput,
  _postgres,
  merge,
  schema,
  track,
)
from jaxgreen._src.cli import main

N = 8  # elements of the toy step's input: N MUL + N ADD per call


def _step():
  return track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")


def _steps_in(led: Ledger) -> int:
  return led.rows("SELECT COALESCE(SUM(steps), 0) AS n FROM steps")[0]["n"]


def _worker(tmp_path, *args, **kw):
  """The ledger tests' writer process (a trial of tracked steps), on a server URL."""
  return ledger_worker(tmp_path, *args, stderr=subprocess.PIPE, **kw)


# -- many writers, a killed writer ----------------------------------------------------


def test_four_processes_write_one_server_ledger(tmp_path, postgres_url):
  procs = [_worker(tmp_path, postgres_url, 30, 3) for _ in range(4)]  # 10 commits each
  for p in procs:
    _, err = p.communicate(timeout=180)
    assert p.returncode == 0, err[-2000:]
  with Ledger(postgres_url, readonly=True) as led:
    assert led.integrity() == "ok"
    assert led.rows("SELECT COUNT(*) AS n FROM runs")[0]["n"] == 4
    statuses = [r["status"] for r in led.rows("SELECT status FROM trials")]
    steps = _steps_in(led)
    tag = led.price_tag("shared")
  assert statuses == ["completed"] * 4
  assert steps == 4 * 30  # processes · steps: nothing lost, nothing twice
  assert tag.h == 4
  assert tag.train_fpo == 4 * 30 * 2 * N  # processes · steps · (N MUL + N ADD)
  assert tag.train_examples == 4 * 30 * N  # examples="x": N per call


def test_a_killed_writer_loses_nothing_committed(tmp_path, postgres_url):
  window = 5
  proc = _worker(tmp_path, postgres_url, -1, window, stdout=subprocess.PIPE)
  seen = 0
  for seen in lines_of(proc):
    if seen >= 3 * window + 2:
      break
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=30)
  with Ledger(postgres_url, readonly=True) as led:
    (row,) = led.rows("SELECT status FROM trials")
    (trial,) = led.price_tag().trials
    recorded = _steps_in(led)
  assert row["status"] == "running"  # never ended, but there: it counts in H
  assert trial.status == "crashed"  # its process is gone from this host
  assert recorded % window == 0  # whole flushes only, never a torn write
  assert recorded >= seen - (2 * window - 1)  # at most the open window is lost
  assert trial.train_steps == recorded and trial.train_fpo == recorded * 2 * N


# -- the same run in SQLite and in PostgreSQL ------------------------------------------


def _tee(sq: Ledger, pg: Ledger) -> None:
  """Every write of ``sq`` also goes, the same rows, to ``pg``."""
  for name in ("add_run", "write_trial"):
    def tee(*args, _name=name, **kw):
      getattr(pg, _name)(*args, **kw)
      return getattr(Ledger, _name)(sq, *args, **kw)
    setattr(sq, name, tee)


def test_sqlite_and_the_server_record_one_run_alike(tmp_path, postgres_url):
  sq, pg = Ledger(tmp_path / "same.sqlite"), Ledger(postgres_url)
  _tee(sq, pg)
  step, x = _step(), jnp.ones(N)
  exp = Experiment("same", ledger=sq, flush_steps=2)
  with exp.trial({"lr": 0.1}) as first:
    for i in range(5):
      step(x)
      first.log(i, loss=1.0 / (i + 1))
  with pytest.raises(RuntimeError), exp.trial({"lr": 10.0}):
    step(x)
    raise RuntimeError("diverged")
  # 4 timed steps of 2 N FPO in 0.25 s against a given peak of 1000 FLOP/s
  sq.write_trial(first.id, throughput=Throughput(4, 0.25, 4 * 2 * N, 4 * 2 * N, None,
                                                 "fp32", 1e3, "given: track(peak=...)"))
  exp.flush()
  tags = [led.price_tag("same") for led in (sq, pg)]
  assert tags[0].to_dict() == tags[1].to_dict()
  assert tags[0].h == 2 and tags[0].train_fpo == 6 * 2 * N  # 5 + 1 calls of 2 N FPO
  assert tags[1].trials[0].mfu == 4 * 2 * N / 0.25 / 1e3  # 128 FPO/s of 1000
  for table in ("meta", "runs", "trials", "signatures", "steps", "metrics"):
    if table == "meta":  # the server has no PRAGMA user_version: meta holds it
      assert {r["key"] for r in pg.rows("SELECT key FROM meta")} == {
          "format", "created", "schema_version"}
      continue
    rows = [[{k: v for k, v in r.items() if k != "heartbeat"}  # stamped by each write
             for r in led.rows(f"SELECT * FROM {table} ORDER BY id")] for led in (sq, pg)]
    assert rows[0] == rows[1], table  # unix times too: DOUBLE PRECISION, not float4
  assert sq.metric_rows("same", "loss") == pg.metric_rows("same", "loss")
  assert pg.trial_row(first.id)["timed_fpo"] == str(4 * 2 * N)
  exp.close()
  pg.close()


def test_merging_sqlite_into_the_server_twice_adds_nothing_twice(tmp_path, postgres_url,
                                                                 capsys):
  a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
  for path, calls in ((a, 3), (b, 5)):
    step = _step()
    with Experiment("sweep", ledger=path) as exp, exp.trial({"calls": calls}):
      for _ in range(calls):
        step(jnp.ones(N))
  added = merge([a, b], postgres_url)
  assert (added["runs"], added["trials"], added["steps"]) == (2, 2, 2)
  assert set(merge([a, b], postgres_url).values()) == {0}
  assert main(["ledger", "merge", str(a), "-o", postgres_url]) == 0
  assert "added 0 runs, 0 trials" in capsys.readouterr().out
  with Ledger(postgres_url, readonly=True) as led:
    tag = led.price_tag("sweep")
  assert tag.h == 2
  assert tag.train_fpo == (3 + 5) * 2 * N  # calls · (N MUL + N ADD)
  out = tmp_path / "back.sqlite"  # and back: the server as a merge source
  assert merge([postgres_url], out)["steps"] == 2
  with Ledger(out, readonly=True) as led:
    assert led.price_tag("sweep").to_dict() == tag.to_dict()


# -- errors, reconnection, read-only ---------------------------------------------------


def _closed_port() -> int:
  import socket

  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]  # nothing listens there once closed


def test_a_bad_url_is_one_clear_error_with_the_password_masked(postgres_url):
  refused = f"postgresql://ann:s3cret@127.0.0.1:{_closed_port()}/green"
  with pytest.raises(LedgerError) as e:
    Ledger(refused)
  msg = str(e.value)
  assert "s3cret" not in msg and "postgresql://ann:***@127.0.0.1" in msg
  assert "is the server running and reachable? check the URL" in msg
  with pytest.raises(LedgerError, match=r"ann:\*\*\*@") as e:  # through Experiment too
    Experiment("x", ledger=refused)
  assert "s3cret" not in str(e.value)
  missing = postgres_url.rsplit("/", 1)[0] + "/jg_missing?password=s3cret"
  with pytest.raises(LedgerError, match="createdb jg_missing,") as e:
    Ledger(missing, readonly=True)
  assert "s3cret" not in str(e.value) and "password=***" in str(e.value)


def test_path_and_repr_never_show_the_password(postgres_url):
  url = postgres_url.replace("postgresql://postgres@", "postgresql://postgres:pw1234@")
  with Ledger(url) as led:  # the test server trusts local logins: any password works
    assert led.path == postgres_url.replace("postgres@", "postgres:***@")
    assert "pw1234" not in repr(led) and "***" in repr(led)


def test_a_dropped_connection_reconnects_and_loses_nothing(postgres_url):
  import psycopg

  step, x = _step(), jnp.ones(N)
  exp = Experiment("drop", ledger=postgres_url, flush_steps=10**6, flush_seconds=1e9)
  trial = exp.trial().start()
  step(x)
  exp.flush()
  step(x)
  step(x)
  pid = exp.ledger.conn.raw.info.backend_pid
  with psycopg.connect(postgres_url, autocommit=True) as admin:  # a server restart
    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
  with pytest.raises(LedgerError, match="connection"):
    exp.flush()  # fails; the 2 steps are kept
  exp.flush()  # reconnects
  trial.end()
  exp.close()
  with Ledger(postgres_url, readonly=True) as led:
    assert _steps_in(led) == 3  # 1 + 2: nothing lost, nothing twice
    (t,) = led.price_tag("drop").trials
  assert (t.status, t.train_fpo) == ("completed", 3 * 2 * N)


def test_hosts_opening_a_new_server_ledger_at_once_create_it_once(postgres_url):
  errors: list[BaseException] = []

  def open_it():
    try:
      Ledger(postgres_url).close()
    except BaseException as e:  # noqa: BLE001 - reported below
      errors.append(e)

  threads = [threading.Thread(target=open_it) for _ in range(6)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=120)
  assert not any(t.is_alive() for t in threads)
  assert errors == []
  with Ledger(postgres_url, readonly=True) as led:
    assert led.rows("SELECT value FROM meta WHERE key = 'schema_version'") == [
        {"value": str(schema.SCHEMA_VERSION)}]
    with pytest.raises(LedgerError, match="readonly=True"):
      led.write(lambda c: c.execute("DELETE FROM meta"))
    with pytest.raises(LedgerError, match="read-only"):  # even past write()
      led.rows("DELETE FROM meta")


def test_an_empty_database_read_only_is_not_a_ledger(postgres_url):
  with pytest.raises(LedgerError, match="not a jaxgreen ledger.*URL of a database"):
    Ledger(postgres_url, readonly=True)


def test_the_cli_reports_a_server_ledger(postgres_url, capsys):
  step = _step()
  with Experiment("cli", ledger=postgres_url) as exp, exp.trial({"lr": 0.1}):
    for _ in range(3):
      step(jnp.ones(N))
  assert main(["ledger", "report", postgres_url]) == 0
  out = capsys.readouterr().out
  assert "cli" in out and "lr=0.1" in out and "completed" in out
  assert main(["ledger", "report", postgres_url, "--json"]) == 0
  (d,) = json.loads(capsys.readouterr().out)
  assert (d["H_trials"], d["train_fpo"]) == (1, 3 * 2 * N)  # 3 calls of N MUL + N ADD


def test_without_psycopg_the_error_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
  with pytest.raises(ImportError, match=r"pip install 'jaxgreen\[postgres\]'"):
    Ledger("postgresql://ann@127.0.0.1:1/green")
  assert _postgres.mask("postgres://ann:x@h/db?sslmode=require&password=y") == (
      "postgres://ann:***@h/db?sslmode=require&password=***")


def test_each_server_failure_names_its_fix():
  from jaxgreen._src.account.ledger import _server_error

  url = "postgresql://ann:***@db.lan/green"
  cases = {  # (SQLSTATE, message, while connecting) -> the fix named
      ("28P01", 'password authentication failed for user "ann"', True):
          "check user and password (or PGPASSWORD / ~/.pgpass)",
      ("3D000", 'database "green" does not exist', True): "create it with createdb green,",
      (None, 'role "nobody" does not exist', True): "check user and password",
      (None, "connection refused", True): "is the server running and reachable?",
      ("55P03", "canceling statement due to lock timeout", False): "the ledger is busy",
      ("57P01", "terminating connection due to administrator command", False):
          "reconnects at the next write",
  }
  for (code, text, connecting), fix in cases.items():
    kind = _postgres._kind(code, text.lower(), connecting, dropped=False)
    msg = str(_server_error(_postgres.ServerError(text, kind), url, "open"))
    assert fix in msg and url in msg, (code, msg)


def test_an_unreachable_server_is_retried_at_most_every_pause_from_steps(postgres_url,
                                                                         monkeypatch):
  import psycopg

  from jaxgreen._src.account import ledger

  led = Ledger(postgres_url)
  real_url = led._url
  with psycopg.connect(postgres_url, autocommit=True) as admin:
    admin.execute("SELECT pg_terminate_backend(%s)", (led.conn.raw.info.backend_pid,))
  led._url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/gone"  # the server is down
  insert = lambda c: c.execute("INSERT INTO meta VALUES ('k', 'v')")  # noqa: E731
  with pytest.raises(LedgerError, match="reconnects at the next write"):
    led.write(insert, timeout=0.05)  # the broken connection is found
  connects = []
  real_connection = _postgres.Connection
  monkeypatch.setattr(_postgres, "Connection",
                      lambda *a, **kw: connects.append(1) or real_connection(*a, **kw))
  with pytest.raises(LedgerError, match="is the server running"):
    led.write(insert, timeout=0.05)  # tries to reconnect: refused
  with pytest.raises(LedgerError, match="could not be reached a moment ago"):
    led.write(insert, timeout=0.05)  # within the pause: no new attempt
  assert len(connects) == 1
  led._url = real_url  # the server is back
  led.write(insert)  # a write with the full timeout (close, exit) always tries
  assert len(connects) == 2 and ledger._RECONNECT_PAUSE_S == 30.0
  assert led.rows("SELECT value FROM meta WHERE key = 'k'") == [{"value": "v"}]
  led.close()


# -- Ctrl-C with a server that stops answering ------------------------------------------


class _Proxy:
  """A loopback TCP relay to the server that can freeze: it then keeps every connection
  open but passes no byte either way (a hung host), and answers new ones with silence."""

  def __init__(self, url: str):
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    self.upstream = (parts.hostname, parts.port)
    self.listener = socket.create_server(("127.0.0.1", 0))
    self.url = urllib.parse.urlunsplit(parts._replace(
        netloc=f"{parts.username}@127.0.0.1:{self.listener.getsockname()[1]}"))
    self.frozen = threading.Event()
    threading.Thread(target=self._accept, daemon=True).start()

  def _accept(self):
    import socket

    while True:
      client, _ = self.listener.accept()
      if self.frozen.is_set():
        continue  # accepted, never answered
      server = socket.create_connection(self.upstream)
      for a, b in ((client, server), (server, client)):
        threading.Thread(target=self._relay, args=(a, b), daemon=True).start()

  def _relay(self, src, dst):
    while True:
      data = src.recv(65536)
      while self.frozen.is_set():
        time.sleep(0.01)
      if not data:
        return
      dst.sendall(data)


_CTRL_C_SERVER = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp
    from jaxgreen._src.account import Experiment, track
    step = track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
    x = jnp.ones(8)
    step(x)
    exp = Experiment("frozen", ledger=sys.argv[1], flush_steps=1)
    print("ready", flush=True)
    try:
        with exp.trial():
            while True:
                step(x)
    except KeyboardInterrupt:
        caught = time.monotonic()
    print("caught", repr(caught), flush=True)
    t0 = time.monotonic()
    exp.close()
    print("closed", time.monotonic() - t0, flush=True)
    print("steps", step.tracker.steps - 1, flush=True)
""")


@pytest.mark.slow
def test_ctrl_c_with_a_server_that_stopped_answering(tmp_path, postgres_url, monkeypatch):
  from benchmarks.reliability import Child

  monkeypatch.setenv("JAXGREEN_PENDING_DIR", str(tmp_path / "pending"))
  proxy = _Proxy(postgres_url)
  script = tmp_path / "frozen.py"
  script.write_text(_CTRL_C_SERVER)
  child = Child([str(script), proxy.url])
  try:
    child.until("ready", timeout=120)
    time.sleep(0.3)
    proxy.frozen.set()  # the server stops answering mid-training
    time.sleep(0.5)
    sent = time.monotonic()
    child.proc.send_signal(signal.SIGINT)
    assert float(child.until("caught", timeout=30).split()[1]) - sent <= 1.0
    closed = float(child.until("closed", timeout=60).split()[1])
    ran = int(child.until("steps", timeout=30).split()[1])
  finally:
    child.close(timeout=60)
  assert closed < 10  # bounded: never the ledger's 60 s timeout, never forever
  pending = list((tmp_path / "pending").glob("*.pending"))
  assert len(pending) == 1  # what the frozen server did not take
  proxy.frozen.clear()
  Ledger(proxy.url).close()  # the next open of the same ledger writes them, once
  with Ledger(postgres_url, readonly=True) as led:
    assert _steps_in(led) == ran
  assert not list((tmp_path / "pending").glob("*.pending"))
