"""Reliability of the ledger and of the HLO parser, as figures with targets.

The ledger's promises (README, "What the ledger promises") measured as steps run vs
steps recorded, in five situations:

  (a) threads: a dashboard thread calls ``exp.flush()`` / ``exp.report()`` while
      training runs, and worker threads of a pool run steps;
  (b) SIGTERM at random points of a training loop (a child process; its own handler
      prints the steps that ran); the trial must end ``preempted``;
  (c) SIGINT (Ctrl-C) landing just after a COMMIT and just after ``BEGIN IMMEDIATE``
      (injected at every write of a run), and at random times in a child process;
  (d) a ledger whose write lock another process holds while training runs;
  (e) trials whose end write failed, their references dropped, written at close;
  (f) Ctrl-C at random points of a training loop with ``flush_steps`` 1, 20 and 1000,
      with the ledger free and with another process holding its write lock: the time
      from the signal to ``KeyboardInterrupt`` (max; target <= 1 s), and steps run vs
      recorded (after a lock held through ``close()``, the rows saved to the ledger's
      pending file are counted once its next open wrote them);
  (g) ``merge`` of crafted ledger files (odd table and column names, SQL text as a
      name, values of the wrong type, repeated ids, huge numbers): each must be refused
      with a ``LedgerError``, adding no row and leaving the destination unchanged.

Every step run must be recorded exactly once: lost = 0 and over-counted = 0.

Then HLO fuzzing with ``hypothesis``: compiled HLO texts of real programs,
mutated (truncated, lines dropped, swapped or duplicated, tokens and numbers spliced
in) and counted with :func:`jaxgreen._src.hlo.count_hlo_text`. Each must be counted or
raise :class:`jaxgreen._src.hlo.HloParseError`; raw exceptions per 10,000 texts (target 0)
and hangs (a text taking over ``--hang-s`` seconds; target 0).

Exits 1 when a figure misses its target. About three minutes on 2 cores:

  JAX_PLATFORMS=cpu python benchmarks/reliability.py [--fuzz 10000] [--runs 4] [--ctrl-c 20]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import gc
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxgreen._src.account import Experiment, Ledger, LedgerError, track
from jaxgreen._src.hlo import HloParseError, count_hlo_text

N = 8  # elements of the toy step's input


def _step() -> Any:
  return track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")


def _recorded(path: Path) -> int:
  with Ledger(path, readonly=True) as led:
    return led.rows("SELECT COALESCE(SUM(steps), 0) AS n FROM steps")[0]["n"]


def _statuses(path: Path) -> list[str]:
  with Ledger(path, readonly=True) as led:
    return [r["status"] for r in led.rows("SELECT status FROM trials ORDER BY started")]


# -- (a) threads ---------------------------------------------------------------------


def threads(folder: Path, steps: int = 2000) -> tuple[int, int]:
  """Steps run vs recorded with a dashboard thread flushing/reporting, plus a pool."""
  path = folder / "threads.sqlite"
  step, x = _step(), jnp.ones(N)
  exp = Experiment("threads", ledger=path, flush_steps=50)
  stop = threading.Event()

  def dashboard() -> None:
    i = 0
    while not stop.is_set():
      exp.flush() if i % 2 else exp.report()
      i += 1

  ran = 0
  with exp.trial():
    th = threading.Thread(target=dashboard)
    th.start()
    for _ in range(steps):
      step(x)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      list(pool.map(lambda _: step(x), range(200)))
    stop.set()
    th.join()
    ran = steps + 200
  exp.close()
  return ran, _recorded(path)


# -- (b), (c) signals in a child process -----------------------------------------------

class Child:
  """A child Python process whose output lines are read with a timeout (a thread reads
  them), so a child that hangs fails the run instead of hanging it."""

  def __init__(self, args: list[str], stdin: bool = False):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    self.err = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the child
    self.proc = subprocess.Popen([sys.executable, *args], env=env, text=True,
                                 stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=self.err)
    self.lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=self._read, daemon=True).start()

  def _read(self) -> None:
    assert self.proc.stdout is not None
    for line in self.proc.stdout:
      self.lines.put(line.strip())
    self.lines.put(None)

  def line(self, timeout: float = 120.0) -> str:
    """The next line; RuntimeError after ``timeout`` seconds or at the child's end."""
    try:
      got = self.lines.get(timeout=timeout)
    except queue.Empty:
      with contextlib.suppress(OSError):  # its stacks (the child's faulthandler), then kill
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
      self.kill()
      raise RuntimeError(f"the child printed nothing for {timeout:.0f} s; its stderr ends:"
                         f"\n{self.stderr()}") from None
    if got is None:
      raise RuntimeError(f"the child ended (exit status {self.proc.wait(timeout=60)}); its "
                         f"stderr ends:\n{self.stderr()}")
    return got

  def stderr(self, chars: int = 6000) -> str:
    self.err.seek(0)
    return self.err.read().decode(errors="replace")[-chars:]

  def until(self, prefix: str, timeout: float = 120.0) -> str:
    """The first line starting with ``prefix`` (within ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
      got = self.line(max(0.01, deadline - time.monotonic()))
      if got.startswith(prefix):
        return got

  def send(self, text: str) -> None:
    assert self.proc.stdin is not None
    self.proc.stdin.write(text + "\n")
    self.proc.stdin.flush()

  def kill(self) -> None:
    self.proc.kill()
    self.proc.wait(timeout=60)

  def close(self, timeout: float = 120.0) -> int:
    if self.proc.stdin is not None:
      with contextlib.suppress(OSError):
        self.proc.stdin.close()
    try:
      return self.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.kill()
      raise RuntimeError(f"the child did not exit within {timeout} s") from None
    finally:
      self.err.close()


_CHILD = textwrap.dedent("""
    import os, signal, sys
    # Python's own Ctrl-C handler even when started with SIGINT ignored (nohup ... &)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp
    from jaxgreen._src.account import Experiment, track
    path, sig = sys.argv[1], sys.argv[2]
    step = track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
    x = jnp.ones(8)
    step(x)  # compiled outside the trial
    if sig == "TERM":
        def bye(signum, frame):  # runs after jaxgreen's handler
            print("steps", step.tracker.steps - 1, flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
    exp = Experiment("sig", ledger=path, flush_steps=int(sys.argv[3]))
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


def _child_run(script: Path, path: Path, sig: str, delay: float, flush_steps: int
               ) -> tuple[int, int, str]:
  child = Child([str(script), str(path), sig, str(flush_steps)])
  child.until("ready")
  time.sleep(delay)
  child.proc.send_signal(signal.SIGTERM if sig == "TERM" else signal.SIGINT)
  try:
    ran = int(child.until("steps").split()[1])
  except RuntimeError:
    ran = -1
  child.close()
  (status,) = _statuses(path)
  return ran, _recorded(path), status


def signals_in_children(folder: Path, runs: int, rng: random.Random
                        ) -> dict[str, list[tuple[int, int, str]]]:
  """(ran, recorded, status) of ``runs`` children per signal, signalled at random."""
  script = folder / "child.py"
  script.write_text(_CHILD)
  jobs = [(sig, i, rng.uniform(0.05, 0.6), rng.choice((1, 7, 100)))
          for sig in ("TERM", "INT") for i in range(runs)]
  out: dict[str, list[tuple[int, int, str]]] = collections.defaultdict(list)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    futures = {pool.submit(_child_run, script, folder / f"{sig}{i}.sqlite", sig, d, fs): sig
               for sig, i, d, fs in jobs}
    for f in concurrent.futures.as_completed(futures):
      out[futures[f]].append(f.result())
  return out


class _InterruptAfter:
  """A connection that raises KeyboardInterrupt right after a chosen statement."""

  def __init__(self, conn: sqlite3.Connection, prefix: str, at: int):
    self.conn, self.prefix, self.at, self.seen = conn, prefix, at, 0

  def execute(self, sql: str, *args: Any) -> Any:
    out = self.conn.execute(sql, *args)
    if sql.startswith(self.prefix):
      self.seen += 1
      if self.seen == self.at:
        raise KeyboardInterrupt
    return out

  def __getattr__(self, name: str) -> Any:
    return getattr(self.conn, name)


def interrupt_at(folder: Path, prefix: str, writes: int = 12) -> tuple[int, int]:
  """Ctrl-C just after the k-th ``prefix`` statement (COMMIT or BEGIN), for every k of
  a run of ``writes`` flushes; the run goes on after each. Returns (ran, recorded)."""
  ran = recorded = 0
  for k in range(1, writes + 1):
    path = folder / f"{prefix.split()[0].lower()}{k}.sqlite"
    step, x = _step(), jnp.ones(N)
    exp = Experiment("int", ledger=path, flush_steps=1)
    real = exp.ledger.conn
    exp.ledger.conn = _InterruptAfter(real, prefix, k)  # type: ignore[assignment]
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      try:
        with exp.trial():
          for _ in range(writes):
            step(x)
      except KeyboardInterrupt:
        pass
      exp.ledger.conn = real
      exp.close()
    ran += step.tracker.steps  # every call that returned, the interrupted one too
    recorded += _recorded(path)
  return ran, recorded


# -- (d) a locked ledger, (e) dropped references -------------------------------------------


def locked(folder: Path, steps: int = 200) -> tuple[int, int, float]:
  """(ran, recorded, longest stall of one call in seconds) under another writer's lock."""
  path = folder / "locked.sqlite"
  step, x = _step(), jnp.ones(N)
  exp = Experiment("locked", ledger=path, flush_steps=10)
  other = sqlite3.connect(path, isolation_level=None)
  other.execute("BEGIN IMMEDIATE")
  worst = 0.0
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with exp.trial() as trial:
      for i in range(steps):
        t0 = time.perf_counter()
        step(x)
        if i % 20 == 0:
          trial.log(i, val_acc=i / steps)
        worst = max(worst, time.perf_counter() - t0)
  other.execute("ROLLBACK")
  other.close()
  exp.close()
  return steps, _recorded(path), worst


def dropped(folder: Path, trials: int = 5, steps: int = 7) -> tuple[int, int, list[str]]:
  """Trials whose end write failed, their references dropped: (ran, recorded, statuses)."""
  path = folder / "dropped.sqlite"
  step, x = _step(), jnp.ones(N)
  exp = Experiment("dropped", ledger=path)
  real = exp.ledger.write

  def broken(fn: Callable, timeout: float | None = None) -> Any:
    raise sqlite3.OperationalError("database is locked")

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _ in range(trials):
      trial = exp.trial().start()
      for _ in range(steps):
        step(x)
      exp.ledger.write = broken  # type: ignore[method-assign]
      trial.end()
      exp.ledger.write = real  # type: ignore[method-assign]
      del trial
  gc.collect()
  exp.close()
  return trials * steps, _recorded(path), _statuses(path)


# -- (f) Ctrl-C latency ----------------------------------------------------------------

_CTRL_C = textwrap.dedent("""
    import faulthandler, os, signal, sys, time
    faulthandler.register(signal.SIGUSR1)  # the parent asks for the stacks of a hang
    # Python's own Ctrl-C handler even when started with SIGINT ignored (nohup ... &)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp
    from jaxgreen._src.account import Experiment, track
    step = track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
    x = jnp.ones(8)
    step(x)  # compiled outside the trials

    class Slow:  # a slow disk: every statement takes SLOW seconds
        def __init__(self, conn):
            self.conn = conn
        def execute(self, *args):
            time.sleep(float(sys.argv[2]))
            return self.conn.execute(*args)
        def __getattr__(self, name):
            return getattr(self.conn, name)

    for line in sys.stdin:  # one run per line: its ledger file
        exp = Experiment("ctrl-c", ledger=line.strip(), flush_steps=int(sys.argv[1]))
        before = step.tracker.steps
        try:
            with exp.trial():
                if float(sys.argv[2]):  # the disk turns slow once the trial runs
                    exp.ledger.conn = Slow(exp.ledger.conn)
                print("ready", flush=True)
                while True:
                    step(x)
        except KeyboardInterrupt:
            caught = time.monotonic()
        print("caught", repr(caught), flush=True)
        exp.close()
        print("steps", step.tracker.steps - before, flush=True)
""")


def ctrl_c(folder: Path, flush_steps: int, lock: bool, runs: int, rng: random.Random,
           slow: float = 0.0) -> tuple[float, int, int, int]:
  """(max seconds from SIGINT to KeyboardInterrupt, ran, recorded, runs) of ``runs``
  Ctrl-Cs at random points, each in a new ledger. With ``lock`` another process holds
  the ledger's write lock from before training to after the interrupt: on even runs it
  is released once ``KeyboardInterrupt`` was raised, on odd ones only after ``close()``
  gave up and saved the rows as pending (counted when the next open wrote them). With
  ``slow``, each SQL statement of the trainer takes that many seconds (a slow disk)."""
  script = folder / "ctrl_c.py"
  script.write_text(_CTRL_C)
  args = [str(script), str(flush_steps), str(slow)]
  child = Child(args, stdin=True)
  worst, ran, recorded, restarts = 0.0, 0, 0, 0
  try:
    for i in range(runs):
      path = folder / f"ctrl_c_{flush_steps}_{int(lock)}_{slow}_{i}.sqlite"
      child.send(str(path))
      try:
        child.until("ready")
      except RuntimeError as e:  # the trainer died before its trial began: no Ctrl-C sent,
        restarts += 1            # no step at stake; said, then once per scenario retried
        print(f"  (f) flush_steps={flush_steps}: the trainer ended before run {i} began "
              f"({e}); a new one runs it", flush=True)
        if restarts > 1:
          raise
        child.close()
        child = Child(args, stdin=True)
        path = path.with_name(f"{path.stem}_again.sqlite")
        child.send(str(path))
        child.until("ready")
      holder = None
      if lock:
        holder = sqlite3.connect(path, isolation_level=None, timeout=60)
        holder.execute("BEGIN IMMEDIATE")
      time.sleep(rng.uniform(0.05, 0.5))
      sent = time.monotonic()
      child.proc.send_signal(signal.SIGINT)
      worst = max(worst, float(child.until("caught").split()[1]) - sent)
      if holder is not None and i % 2 == 0:
        holder.execute("ROLLBACK")
      ran += int(child.until("steps").split()[1])
      if holder is not None:
        holder.close()  # rolls back
      with Ledger(path) as led:  # writes the rows saved as pending, once
        recorded += led.rows("SELECT COALESCE(SUM(steps), 0) AS n FROM steps")[0]["n"]
      recorded += 10**9 * Path(f"{path}.pending").exists()  # a pending file left: a miss
  finally:
    child.close()
  return worst, ran, recorded, runs


# -- (g) merge of crafted ledgers --------------------------------------------------------


def _crafted(path: Path, kind: str, good: Path) -> None:
  """A copy of the ledger ``good`` changed as ``kind`` says (the way a crafted or
  damaged file from another host might be)."""
  import shutil

  shutil.copy(good, path)
  c = sqlite3.connect(path, isolation_level=None)
  c.execute("PRAGMA ignore_check_constraints = ON")  # a file written by other means
  sid = c.execute("SELECT id FROM steps LIMIT 1").fetchone()[0]
  edits = {
      "sql in a column name": ['ALTER TABLE trials ADD COLUMN "x = 1; DROP TABLE steps; --" '
                               "TEXT"],
      "quote in a column name": ["ALTER TABLE steps ADD COLUMN \"a\"\"b\" INTEGER"],
      "unknown column": ["ALTER TABLE metrics ADD COLUMN extra REAL"],
      "unknown table": ['CREATE TABLE "steps; DELETE FROM trials" (id TEXT)'],
      "missing table": ["DROP TABLE metrics"],
      "text in an integer column": [f"UPDATE steps SET steps = 'many' WHERE id = '{sid}'"],
      "real in an integer column": [f"UPDATE steps SET examples = 2.5 WHERE id = '{sid}'"],
      "blob id": [f"UPDATE steps SET id = X'00ff' WHERE id = '{sid}'"],
      "null id": [f"UPDATE steps SET id = NULL WHERE id = '{sid}'"],
      "huge real": [f"UPDATE steps SET first = 1e999 WHERE id = '{sid}'"],
      "huge integer as text": [f"UPDATE steps SET steps = '{10**40}' WHERE id = '{sid}'"],
      "unknown status": ["UPDATE trials SET status = 'weird'"],
      "unknown kind": [f"UPDATE steps SET kind = 'test' WHERE id = '{sid}'"],
      "duplicate ids": ["CREATE TABLE s2 AS SELECT * FROM steps", "DROP TABLE steps",
                        "CREATE TABLE steps AS SELECT * FROM s2 UNION ALL SELECT * FROM s2",
                        "DROP TABLE s2"],
  }
  for sql in edits[kind]:
    c.execute(sql)
  c.close()


CRAFTED = ("sql in a column name", "quote in a column name", "unknown column", "unknown table",
           "missing table", "text in an integer column", "real in an integer column",
           "blob id", "null id", "huge real", "huge integer as text", "unknown status",
           "unknown kind", "duplicate ids")


def _dump(path: Path) -> list[tuple]:
  with Ledger(path, readonly=True) as led:
    return [tuple(sorted(r.items())) for t in ("runs", "trials", "signatures", "steps",
                                                "metrics")
            for r in led.rows(f"SELECT * FROM {t} ORDER BY id")]


def merge_fuzz(folder: Path) -> tuple[int, int, int, int, list[str]]:
  """(crafted sources, refused with a LedgerError, raw exceptions, destinations
  changed, raw exception texts) of merging each crafted file, alone and after a good
  source, into a ledger that already holds rows."""
  good, dest = folder / "good.sqlite", folder / "dest.sqlite"
  step, x = _step(), jnp.ones(N)
  for path in (good, dest):
    with Experiment("merge", ledger=path) as exp, exp.trial() as t:
      for _ in range(3):
        step(x)
      t.log(3, val_acc=0.5)
  other = folder / "other.sqlite"
  with Experiment("merge", ledger=other) as exp, exp.trial():
    step(x)
  before = _dump(dest)
  refused = raw = changed = 0
  texts = []
  for i, kind in enumerate(CRAFTED):
    bad = folder / f"crafted{i}.sqlite"
    _crafted(bad, kind, good)
    for sources in ([bad], [other, bad]):
      try:
        jaxgreen_merge(sources, dest)
      except LedgerError:
        refused += 1
      except Exception as e:  # the figure this measures: must never happen
        raw += 1
        texts.append(f"{kind}: {type(e).__name__}: {str(e)[:100]}")
      changed += _dump(dest) != before
  return 2 * len(CRAFTED), refused, raw, changed, texts


def jaxgreen_merge(sources: list[Path], dest: Path) -> dict[str, int]:
  from jaxgreen._src.account.ledger import merge

  return merge(sources, dest)


# -- HLO fuzzing -----------------------------------------------------------------------

_TOKENS = ("{", "}", "(", ")", "[", "]", ",", "=", "\n", " ", "%", "f32[", "s32[]", "{0}",
           "-1", "0", "99999999999999999999", "ROOT ", "ENTRY ", "HloModule m\n",
           "parameter(0)", "while(", "condition=", "body=", "calls=", "to_apply=",
           "dot(", "lhs_contracting_dims={1}", "window={size=3}", "/*index=5*/",
           "custom-call(", "custom_call_target=\"x\"", "tuple(", "get-tuple-element(",
           "index=7", "known_trip_count={\"n\":\"-3\"}", "}\n}\n", "->", "(f32[2]",
           "pred[", "bf16[", "c64[", "u8[", "f32[1,2,3]{2,1,0}", "token[]", "e", "\"")


def seed_texts() -> list[str]:
  """Compiled (optimized) HLO texts of small real programs."""
  x, w = jnp.ones((4, 8)), jnp.ones((8, 8))
  img, ker = jnp.ones((1, 3, 16, 16)), jnp.ones((4, 3, 3, 3))

  def mlp(x, w):
    return jax.nn.relu(x @ w).sum()

  def loop(x):
    return jax.lax.fori_loop(0, 5, lambda i, c: jnp.tanh(c * 1.5 + i), x)

  def conv(img, ker):
    return jax.lax.conv(img, ker, (1, 1), "SAME")

  def scan(x):
    return jax.lax.scan(lambda c, r: (c + r, c * r), x[0], x)[1]

  cases: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
      (jax.grad(mlp), (x, w)), (loop, (x,)), (conv, (img, ker)), (scan, (x,)),
      (lambda x: jax.nn.softmax(x).max(), (x,))]
  texts = []
  for f, args in cases:
    texts.append(str(jax.jit(f).lower(*args).compile().as_text()))
  return texts


_OPS = ("cut", "drop", "splice", "line", "swap", "dup", "num")
_NUMS = ("-7", "0", "1", "4294967296", "2147483648", "-0")


def _mutate(text: str, plan: list[tuple[str, float, float, str]]) -> str:
  """Applies mutations ``(op, u, v, token)`` (u, v in [0, 1): where) to ``text``."""
  for op, u, v, tok in plan:
    lines = text.split("\n")
    i, j, k = int(u * len(text)), int(u * len(lines)), int(v * len(lines))
    if op == "cut":
      text = text[:i]
    elif op == "drop":
      text = text[:i] + text[i + 1 + int(v * 40):]
    elif op == "splice":
      text = text[:i] + tok + text[i:]
    elif op == "line":
      text = "\n".join(lines[:j] + lines[j + 1:])
    elif op == "swap":
      lines[j], lines[k] = lines[k], lines[j]
      text = "\n".join(lines)
    elif op == "dup":
      text = "\n".join(lines[:j] + lines[j:j + 1] + lines[j:])
    else:
      text = text[:i] + _NUMS[int(v * len(_NUMS))] + text[i + 1:]
  return text


class _Hang(Exception):
  pass


def _count_one(text: str, hang_s: float) -> str:
  """``exact``, ``inexact``, ``rejected`` (HloParseError), ``hang``, or ``raw: ...``."""
  def alarm(signum: int, frame: Any) -> None:
    raise _Hang

  old = signal.signal(signal.SIGALRM, alarm)
  signal.setitimer(signal.ITIMER_REAL, hang_s)
  try:
    exact = count_hlo_text(text).cost.exact
    return "exact" if exact else "inexact"
  except HloParseError:
    return "rejected"
  except _Hang:
    return "hang"
  except Exception as e:  # the figure this script measures: must never happen
    return f"raw: {type(e).__name__}: {str(e)[:120]}"
  finally:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


def fuzz(texts: list[str], examples: int, hang_s: float,
         batch: int = 25) -> collections.Counter[str]:
  """Outcomes of ``examples`` mutated texts. ``hypothesis`` (derandomized: the same
  texts every run) draws the mutation plans, ``batch`` per example to keep its own
  overhead small."""
  from hypothesis import HealthCheck, Phase, given, settings
  from hypothesis import strategies as st

  unit = st.floats(0, 1, exclude_max=True)
  token = st.sampled_from(_TOKENS) | st.text(max_size=8)
  plan = st.lists(st.tuples(st.sampled_from(_OPS), unit, unit, token), min_size=1, max_size=3)
  plans = st.lists(st.tuples(st.integers(0, len(texts) - 1), plan), min_size=batch,
                   max_size=batch)
  outcomes: collections.Counter[str] = collections.Counter()

  @settings(max_examples=-(-examples // batch), deadline=None, database=None,
            derandomize=True, suppress_health_check=list(HealthCheck), phases=(Phase.generate,))
  @given(plans)
  def run(drawn: list[tuple[int, list[tuple[str, float, float, str]]]]) -> None:
    for seed, p in drawn:
      outcomes[_count_one(_mutate(texts[seed], p), hang_s)] += 1

  run()
  return outcomes


def _fuzz_figures(outcomes: collections.Counter[str]) -> tuple[int, int, int, list[str]]:
  total = sum(outcomes.values())
  raw = {k: n for k, n in outcomes.items() if k.startswith("raw")}
  return total, sum(raw.values()), outcomes["hang"], sorted(raw)[:5]


# -- report ----------------------------------------------------------------------------


def _line(name: str, ran: int, recorded: int) -> tuple[str, int, int]:
  return name, max(ran - recorded, 0), max(recorded - ran, 0)


def ledger_figures(folder: Path, runs: int, rng: random.Random) -> list[tuple[str, int, int]]:
  """(situation, lost, over-counted) per situation; prints steps run vs recorded."""
  rows = []
  ran, rec = threads(folder)
  print(f"(a) threads flushing/reporting + a pool:  ran {ran:,}  recorded {rec:,}")
  rows.append(_line("a", ran, rec))
  children = signals_in_children(folder, runs, rng)
  for sig, label in (("TERM", "(b) SIGTERM at random points"), ("INT", "(c) SIGINT at random")):
    got = children[sig]
    ran, rec = sum(r for r, _, _ in got), sum(c for _, c, _ in got)
    statuses = collections.Counter(s for _, _, s in got)
    print(f"{label} ({len(got)} runs):  ran {ran:,}  recorded {rec:,}  trials {dict(statuses)}")
    rows.append(_line(sig, ran, rec))
    want = "preempted" if sig == "TERM" else "failed"
    rows.append((f"{sig} status", statuses.get(want, 0) != len(got), 0))
  for prefix in ("COMMIT", "BEGIN IMMEDIATE"):
    ran, rec = interrupt_at(folder, prefix)
    print(f"(c) SIGINT just after every {prefix}:  ran {ran:,}  recorded {rec:,}")
    rows.append(_line(prefix, ran, rec))
  ran, rec, worst = locked(folder)
  print(f"(d) locked ledger:  ran {ran:,}  recorded {rec:,}  longest call {worst:.3f} s "
        f"(target < 1 s)")
  rows += [_line("d", ran, rec), ("stall", int(worst >= 1.0), 0)]
  ran, rec, statuses_e = dropped(folder)
  print(f"(e) dropped trials after a failed end write:  ran {ran:,}  recorded {rec:,}  "
        f"statuses {dict(collections.Counter(statuses_e))}")
  rows += [_line("e", ran, rec), ("e status", int(set(statuses_e) != {"completed"}), 0)]
  return rows


def ctrl_c_figures(folder: Path, runs: int, rng: random.Random) -> list[tuple[str, int, int]]:
  """(f): per scenario, max time from SIGINT to KeyboardInterrupt and steps run vs
  recorded; two scenarios at a time (two child processes)."""
  jobs = [(fs, lock, 0.0, random.Random(rng.random())) for lock in (False, True)
          for fs in (1, 20, 1000)]
  jobs.append((1, False, 0.2, random.Random(rng.random())))  # a slow disk
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    got = list(pool.map(lambda j: ctrl_c(folder, j[0], j[1], runs, j[3], j[2]), jobs))
  rows = []
  for (fs, lock, slow, _), (worst, ran, rec, n) in zip(jobs, got, strict=True):
    held = "another process holds the lock" if lock else "ledger free"
    held = f"slow disk ({slow} s a statement)" if slow else held
    print(f"(f) Ctrl-C, flush_steps={fs:<4} {held:<30} ({n} runs): max signal -> "
          f"KeyboardInterrupt {worst:.3f} s (target <= 1 s)  ran {ran:,}  recorded {rec:,}")
    rows += [_line(f"f {fs} {lock}", ran, rec), (f"f {fs} {lock} latency", int(worst > 1.0), 0)]
  return rows


def merge_figures(folder: Path) -> list[tuple[str, int, int]]:
  n, refused, raw, changed, texts = merge_fuzz(folder)
  print(f"(g) merge of crafted ledgers: {n} merges, refused {refused} (target {n}), raw "
        f"exceptions {raw} (target 0), destination changed {changed} (target 0)")
  for t in texts:
    print(f"  {t}")
  return [("g", int(refused != n) + raw + changed, 0)]


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--fuzz", type=int, default=10_000, help="fuzzed HLO texts (default 10000)")
  p.add_argument("--runs", type=int, default=4, help="child processes per signal (default 4)")
  p.add_argument("--hang-s", type=float, default=5.0, help="a text counted longer hangs")
  p.add_argument("--ctrl-c", type=int, default=20, help="Ctrl-Cs per scenario of (f) "
                 "(default 20)")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  t0 = time.perf_counter()
  with tempfile.TemporaryDirectory() as tmp:
    rows = ledger_figures(Path(tmp), args.runs, random.Random(args.seed))
    if args.ctrl_c:
      rows += ctrl_c_figures(Path(tmp), args.ctrl_c, random.Random(args.seed))
    rows += merge_figures(Path(tmp))
  lost, over = sum(r[1] for r in rows), sum(r[2] for r in rows)
  print(f"steps lost: {lost} (target 0); steps over-counted: {over} (target 0)")
  t1 = time.perf_counter()
  outcomes = fuzz(seed_texts(), args.fuzz, args.hang_s)
  total, raw, hangs, kinds = _fuzz_figures(outcomes)
  per = raw * 10_000 / total if total else float("nan")
  print(f"HLO fuzzing: {total:,} texts in {time.perf_counter() - t1:.1f} s; raw exceptions "
        f"{raw} ({per:.1f} per 10,000, target 0); hangs {hangs} (target 0)")
  kept = {k: n for k, n in outcomes.items() if not k.startswith("raw")}
  print(f"  outcomes: {kept}")
  for k in kinds:
    print(f"  {k}")
  print(f"total {time.perf_counter() - t0:.1f} s")
  return int(bool(lost or over or raw or hangs or not total))


if __name__ == "__main__":
  sys.exit(main())
