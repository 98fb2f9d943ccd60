"""Writers of one ledger at once: a PostgreSQL ledger server vs one SQLite file.

P processes (default 4) each run one trial of S tracked steps (default 2000) of a tiny
jitted step, committing every F steps (``flush_steps``, default 100), into: no file
(``ledger=None``: an in-memory ledger, the peer without a shared ledger), one SQLite
file shared by the P processes, and one PostgreSQL database shared by them. The modes
run in one invocation, one after another; within a mode the processes start their
trials at the same instant (after importing jax and compiling). The script prints, per
mode, the wall time of the slowest writer's trial (first step to ``close()``), the
steps per second of all writers together, and checks that the ledger holds exactly
P x S steps (exits 1 otherwise).

The server is ``--url`` (a database the script may create databases next to, e.g.
``postgresql://postgres@127.0.0.1:5432/postgres``), or ``$JAXGREEN_TEST_POSTGRES``, or a
throwaway one started with ``.ci/postgres.sh`` (default settings: fsync on).

  JAX_PLATFORMS=cpu python benchmarks/ledger_server.py [--procs 4] [--steps 2000] \\
      [--flush 100] [--url URL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WORKER = textwrap.dedent("""
    import os, sys, time
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp
    from jaxgreen._src.account import Experiment, track
    ledger, steps, flush, at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    f = jax.jit(lambda x: x * 2.0 + 1.0)
    x = jnp.ones(8)
    f(x).block_until_ready()
    step = track(f, examples="x")
    exp = Experiment("bench", ledger=None if ledger == "-" else ledger, flush_steps=flush,
                     flush_seconds=1e9, measure_energy=False)
    while time.time() < at:
        time.sleep(0.001)
    start = time.perf_counter()
    with exp.trial():
        for _ in range(steps):
            step(x)
    exp.close()
    print(time.perf_counter() - start)
""")


def run_mode(ledger: str, procs: int, steps: int, flush: int, script: Path) -> list[float]:
  """Seconds of each writer's trial (first step to close()), all started at once."""
  at = time.time() + 6.0 + 2.0 * procs  # after every process imported jax and compiled
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  ps = [subprocess.Popen([sys.executable, str(script), ledger, str(steps), str(flush),
                          str(at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env) for _ in range(procs)]
  out = []
  for p in ps:
    stdout, stderr = p.communicate(timeout=600)
    if p.returncode:
      sys.exit(f"a writer failed ({ledger}):\n{stderr[-3000:]}")
    out.append(float(stdout.split()[-1]))
  return out


def recorded(ledger: str) -> int:
  from jaxgreen._src.account import Ledger

  with Ledger(ledger, readonly=True) as led:
    return led.rows("SELECT COALESCE(SUM(steps), 0) AS n FROM steps")[0]["n"]


def server() -> tuple[str, dict[str, str] | None]:
  """A server URL, and the environment of a throwaway server to stop (or None)."""
  url = os.environ.get("JAXGREEN_TEST_POSTGRES")
  if url:
    return url, None
  started = subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "start"], check=True,
                           capture_output=True, text=True).stdout
  env = dict(line.removeprefix("export ").split("=", 1) for line in started.splitlines()
             if line.startswith("export "))
  return env["JAXGREEN_TEST_POSTGRES"], env


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--procs", type=int, default=4)
  ap.add_argument("--steps", type=int, default=2000)
  ap.add_argument("--flush", type=int, default=100)
  ap.add_argument("--url", help="a PostgreSQL server (default: $JAXGREEN_TEST_POSTGRES, "
                                "else a throwaway one)")
  args = ap.parse_args()
  import psycopg

  url, started = (args.url, None) if args.url else server()
  name = f"jg_bench_{uuid.uuid4().hex[:8]}"
  with psycopg.connect(url, autocommit=True) as admin:
    admin.execute(f'CREATE DATABASE "{name}"')
  db = urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{name}"))
  total = args.procs * args.steps
  try:
    with tempfile.TemporaryDirectory() as tmp:
      script = Path(tmp) / "writer.py"
      script.write_text(_WORKER)
      sqlite = str(Path(tmp) / "shared.sqlite")
      print(f"{args.procs} writer processes x {args.steps} steps, a commit every "
            f"{args.flush} steps ({total // args.flush} commits in all)")
      print(f"{'ledger':<28} {'slowest writer (s)':>18} {'steps/s (all)':>14} {'recorded':>9}")
      ok = True
      for label, ledger in (("none (in memory)", "-"), ("one SQLite file", sqlite),
                            ("PostgreSQL server", db)):
        secs = run_mode(ledger, args.procs, args.steps, args.flush, script)
        got = total if ledger == "-" else recorded(ledger)
        ok &= got == total
        print(f"{label:<28} {max(secs):>18.3f} {total / max(secs):>14,.0f} {got:>9,}")
  finally:
    with psycopg.connect(url, autocommit=True) as admin:
      admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if started is not None:
      subprocess.run(["bash", str(ROOT / ".ci" / "postgres.sh"), "stop"],
                     env=dict(os.environ, **started), capture_output=True)
  sys.exit(0 if ok else 1)


if __name__ == "__main__":
  main()
