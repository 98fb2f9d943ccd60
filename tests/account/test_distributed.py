"""Multi-host for real: two ``jax.distributed`` processes, one SPMD step counted once.

Two processes of two CPU devices each (``distributed_worker.py``) form one mesh of four
devices and run a tracked, jitted train step on a global batch sharded over all four.
Only process 0 writes the ledger; the energy each host measured (a fake meter: 100 J
and 50 J) is gathered through the distributed runtime's key-value store and recorded
once, as the sum. The gather logic itself is also tested in-process, with a fake store.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxgreen
from jaxgreen._src.account import energy
from jaxgreen._src.account import experiment as experiment_module
from jaxgreen._src.account.energy import gather_energy, trial_key

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker  # noqa: E402

WORKER = Path(worker.__file__)
RUN_TIMEOUT_S = 60  # both processes together, per attempt (a run takes ~4 s)

# The exact FPO of one global step (8x16 batch, 16x4 weights; jaxgreen counts a dot as
# M·N·K multiplies and M·N·(K-1) adds, and drops the unused loss value):
#   multiplies: x@w 8·4·16 = 512, 2·err 32, 1/32 1, (1/32)·2err 32, errᵀ@x 4·16·8 = 512,
#               lr·g_b 4, lr·g_w 64                                         -> 1157
#   adds:       x@w 8·4·15 = 480, +b 32, -y 32, g_b = Σ over batch 7·4 = 28,
#               errᵀ@x 4·16·7 = 448, b - lr·g_b 4, w - lr·g_w 64           -> 1088
STEP_FPO = 1157 + 1088  # = 2245


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_pair(folder: Path) -> list[dict]:
  """Runs the two worker processes once; their outputs, or AssertionError with logs."""
  port = _free_port()
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  procs, logs = [], []
  try:
    for i in range(2):
      logs.append(open(folder / f"log{i}.txt", "w"))  # noqa: SIM115 - closed below
      procs.append(subprocess.Popen(
          [sys.executable, str(WORKER), str(i), str(port), str(folder / "ledger.sqlite"),
           str(folder / f"out{i}.json")], stdout=logs[i], stderr=subprocess.STDOUT, env=env))
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:  # until both end, or one fails (then stop both)
      codes = [p.poll() for p in procs]
      if None not in codes or any(c not in (None, 0) for c in codes):
        break
      time.sleep(0.05)
  finally:
    for p in procs:  # torn down whatever happened; a timeout shows as a kill's code
      if p.poll() is None:
        p.kill()
        p.wait(timeout=60)
    for f in logs:
      f.close()
  text = [(folder / f"log{i}.txt").read_text() for i in range(2)]
  codes = [p.returncode for p in procs]
  assert codes == [0, 0], f"worker exit codes {codes}; logs:\n" + "\n----\n".join(
      t[-3000:] for t in text)
  return [json.loads((folder / f"out{i}.json").read_text()) for i in range(2)]


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
  """(process 0's output, process 1's output, ledger path) of one two-process run."""
  for attempt in range(3):  # the free port may be taken before the coordinator binds it
    folder = tmp_path_factory.mktemp(f"two-hosts-{attempt}")
    try:
      return (*_run_pair(folder), folder / "ledger.sqlite")
    except AssertionError as e:
      taken = ("failed to add port" in str(e).lower()
               or "address already in use" in str(e).lower())
      if attempt == 2 or not taken:
        raise
  raise AssertionError("unreachable")


def _rows(path: Path, sql: str) -> list[tuple]:
  with sqlite3.connect(path) as c:
    return c.execute(sql).fetchall()


def test_spmd_program_ran_on_four_global_devices(two_hosts):
  out0, out1, _ = two_hosts
  for i, out in enumerate((out0, out1)):
    assert (out["process_index"], out["process_count"]) == (i, 2)
    assert (out["device_count"], out["local_devices"]) == (4, 2)  # 2 hosts × 2 devices
    assert out["batch_global_shape"] == [worker.B, worker.IN]
    assert out["batch_local_rows"] == worker.B // 2  # each host holds half the batch
  # The global step computed what the same three steps compute on one device.
  params, batch = worker.global_inputs()
  step = jax.jit(worker.train_step)
  for _ in range(worker.STEPS):
    params = step(params, batch)
  np.testing.assert_allclose(out0["w"], np.asarray(params["w"]), rtol=1e-5)
  np.testing.assert_allclose(out1["w"], out0["w"], rtol=0)


def test_only_process_0_writes(two_hosts):
  out0, out1, ledger = two_hosts
  assert out0["recording"] and out0["ledger"] == str(ledger)
  assert not out1["recording"] and out1["ledger"] == ":memory:"  # tracked in memory only
  runs = _rows(ledger, "SELECT process_index, process_count, device_count FROM runs")
  assert runs == [(0, 2, 4)]  # one run row: process 0's, of a 2-process, 4-device job
  assert len(_rows(ledger, "SELECT id FROM trials")) == 1


def test_global_step_counted_once(two_hosts):
  out0, out1, ledger = two_hosts
  # The same step counted on one process, with the global shapes: the hand count.
  params, batch = worker.global_inputs()
  assert jaxgreen.count(worker.train_step)(params, batch).fpo == STEP_FPO
  tag = jaxgreen.Ledger(ledger).price_tag(worker.EXPERIMENT)
  assert tag.h == 1
  assert tag.train_fpo == worker.STEPS * STEP_FPO  # 3 · 2245 = 6735, not 2 · 6735
  assert tag.train_examples == worker.STEPS * worker.B  # 3 steps · global batch 8 = 24
  assert _rows(ledger, "SELECT SUM(steps) FROM steps") == [(worker.STEPS,)]
  # Each process saw the global program (it would have counted it too, had it written).
  assert out0["train_fpo"] == out1["train_fpo"] == worker.STEPS * STEP_FPO


def test_energy_of_every_host_recorded_once(two_hosts):
  _, _, ledger = two_hosts
  rows = _rows(ledger, "SELECT status, energy_j, energy_source FROM trials")
  # 100 J measured on process 0 + 50 J on process 1 = 150 J, from both hosts.
  assert rows == [("completed", 150.0, "NVML, 2 of 2 hosts")]
  (trial,) = jaxgreen.Ledger(ledger).price_tag(worker.EXPERIMENT).trials
  assert trial.energy_j == 150.0


# -- the gather, without processes --------------------------------------------------


class FakeStore:
  """The distributed client's key-value calls, over a dict."""

  def __init__(self, **values: float | None):
    self.kv = {k: json.dumps(v) for k, v in values.items()}
    self.waited_ms: list[int] = []

  def key_value_set(self, key: str, value: str, allow_overwrite: bool = False) -> None:
    if key in self.kv and not allow_overwrite:
      raise RuntimeError(f"ALREADY_EXISTS: {key}")
    self.kv[key] = value

  def blocking_key_value_get(self, key: str, timeout_in_ms: int) -> str:
    self.waited_ms.append(timeout_in_ms)
    if key not in self.kv:
      time.sleep(timeout_in_ms / 1000)
      raise RuntimeError(f"DEADLINE_EXCEEDED: {key}")
    return self.kv[key]

  def key_value_delete(self, key: str) -> None:
    self.kv.pop(key, None)


def _store(**by_host: float | None) -> FakeStore:
  return FakeStore(**{f"k/{h[1:]}": v for h, v in by_host.items()})  # h1=50 -> "k/1"


def test_gather_sums_every_host_and_clears_the_store():
  store = _store(h1=50.0, h2=25.0)
  assert gather_energy(100.0, "k", 0, 3, client=store) == (175.0, "NVML, 3 of 3 hosts")
  assert store.kv == {}  # read keys are deleted: a long sweep leaves nothing behind


def test_gather_names_hosts_that_did_not_measure():
  got = gather_energy(100.0, "k", 0, 3, client=_store(h1=None, h2=25.0))
  assert got == (125.0, "NVML, 2 of 3 hosts; not measured on host 1")  # 100 + 25
  got = gather_energy(None, "k", 0, 2, client=_store(h1=50.0))
  assert got == (50.0, "NVML, 1 of 2 hosts; not measured on host 0")
  assert gather_energy(None, "k", 0, 2, client=_store(h1=None)) == (None, None)


def test_gather_wait_is_bounded_and_silent_hosts_are_named():
  store = _store(h2=25.0)
  t0 = time.monotonic()
  got = gather_energy(100.0, "k", 0, 4, client=store, timeout=0.2)
  assert time.monotonic() - t0 < 2.0  # hosts 1 and 3 never report: one bounded wait
  assert got == (125.0, "NVML, 2 of 4 hosts; no report within 0.2 s from hosts 1, 3")
  assert sum(store.waited_ms) <= 200 + 2  # all hosts share the 200 ms (1 ms floor each)


def test_other_processes_publish_and_never_wait():
  store = FakeStore()
  assert gather_energy(50.0, "k", 1, 2, client=store) == (50.0, "NVML, host 1 only")
  assert store.kv == {"k/1": "50.0"} and store.waited_ms == []
  assert gather_energy(None, "j", 1, 2, client=store) == (None, None)
  assert store.kv["j/1"] == "null"  # "measured nothing" is published too
  store.kv["i/1"] = "taken"  # a failed publish does not raise (process 0 names host 1)
  assert gather_energy(5.0, "i", 1, 2, client=store) == (5.0, "NVML, host 1 only")


def test_without_a_distributed_client_the_label_says_one_host():
  # No jax.distributed here: no client, so nothing can be gathered, and the label says so.
  joules, source = gather_energy(100.0, "k", 0, 2)
  assert joules == 100.0
  assert source.startswith("NVML, host 0 only of 2: the other hosts' energy could not")


def test_trial_keys_count_trials_per_experiment_name():
  a, b = trial_key("keys-test"), trial_key("keys-test")
  assert (a, b) == ("jaxgreen/energy/keys-test/1", "jaxgreen/energy/keys-test/2")
  assert trial_key("keys-other") == "jaxgreen/energy/keys-other/1"


def test_experiment_records_the_partial_sum_honestly(monkeypatch, tmp_path):
  """Process 0 of 2, host 1 silent: the trial's end waits the bounded time, then records
  its own 100 J, labelled as 1 of 2 hosts."""
  store = FakeStore()
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(energy, "distributed_client", lambda: store)
  monkeypatch.setattr(experiment_module, "GATHER_TIMEOUT_S", 0.2)
  monkeypatch.setattr(experiment_module, "NvmlMeter", lambda: worker.FakeMeter(100.0))
  exp = jaxgreen.Experiment("partial-energy", ledger=tmp_path / "l.sqlite")
  store.kv["jaxgreen/energy/partial-energy/2/1"] = "50.0"  # host 1 reports trial 2 only
  t0 = time.monotonic()
  with exp.trial({"lr": 0.1}):
    pass
  with exp.trial({"lr": 0.2}):
    pass
  took = time.monotonic() - t0
  exp.close()
  rows = _rows(tmp_path / "l.sqlite", "SELECT energy_j, energy_source FROM trials "
               "ORDER BY started")
  assert rows == [(100.0, "NVML, 1 of 2 hosts; no report within 0.2 s from host 1"),
                  (150.0, "NVML, 2 of 2 hosts")]  # 100 J + host 1's 50 J for trial 2
  assert took < 3.0  # one 0.2 s wait, not a hang
