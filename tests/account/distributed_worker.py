"""One process of the two-process ``jax.distributed`` test (``test_distributed.py``).

Run as ``python distributed_worker.py PROCESS_ID PORT LEDGER OUT`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (set by the test): two processes
of two CPU devices each make one global mesh of four devices, and run a tracked, jitted
SPMD train step on a global batch sharded over all four, inside one trial. NVML is
replaced by a fake meter (100 J on process 0, 50 J on process 1) so the gathered
energy is known. The process writes what it saw to OUT as JSON.

Not a test module itself (no ``test_`` prefix): pytest does not collect it.
"""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

B, IN, OUT, STEPS, LR = 8, 16, 4, 3, 0.1  # global batch, features, outputs, steps, lr
FAKE_JOULES = (100.0, 50.0)  # what each process's meter "measures" during the trial
EXPERIMENT = "two-hosts"


def train_step(params, batch):
  """One SGD step of a linear regression (the program the test counts by hand)."""

  def loss(p):
    x, y = batch
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

  grads = jax.grad(loss)(params)
  return jax.tree.map(lambda p, g: p - LR * g, params, grads)


def global_inputs() -> tuple[dict, tuple]:
  """The global parameters and batch (numpy), the same on every process."""
  x = np.arange(B * IN, dtype=np.float32).reshape(B, IN) / (B * IN)
  y = np.ones((B, OUT), np.float32)
  params = {"w": np.full((IN, OUT), 0.1, np.float32), "b": np.zeros(OUT, np.float32)}
  return params, (x, y)


class FakeMeter:
  """A meter that measured ``joules`` between start and stop."""

  def __init__(self, joules: float):
    self.joules = joules
    self.started = False

  @property
  def available(self) -> bool:
    return True

  def start(self) -> None:
    self.started = True

  def stop(self) -> float | None:
    return self.joules if self.started else None


def main(process_id: int, port: int, ledger: str, out: str) -> None:
  jax.config.update("jax_platforms", "cpu")
  jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id,
                             coordinator_bind_address=f"127.0.0.1:{port}",
                             initialization_timeout=40)
  import jaxgreen
  from jaxgreen._src.account import experiment as experiment_module

  experiment_module.NvmlMeter = lambda: FakeMeter(FAKE_JOULES[process_id])  # type: ignore

  mesh = Mesh(np.array(jax.devices()), ("data",))  # 4 global devices, 2 per process
  rows = NamedSharding(mesh, P("data"))  # the batch: split over all four devices
  replicated = NamedSharding(mesh, P())
  params_np, (x, y) = global_inputs()
  local = slice(process_id * B // 2, (process_id + 1) * B // 2)  # this host's half
  batch = tuple(jax.make_array_from_process_local_data(rows, a[local], a.shape)
                for a in (x, y))
  params = {k: jax.make_array_from_process_local_data(replicated, v, v.shape)
            for k, v in params_np.items()}

  step = jaxgreen.track(jax.jit(train_step), examples="batch")
  exp = jaxgreen.Experiment(EXPERIMENT, ledger=ledger)
  with exp.trial({"lr": LR}) as trial:
    for _ in range(STEPS):
      params = step(params, batch)
  w = np.asarray(params["w"].addressable_data(0))  # replicated: every device holds it
  result = {
      "process_index": jax.process_index(), "process_count": jax.process_count(),
      "device_count": jax.device_count(), "local_devices": jax.local_device_count(),
      "recording": exp.recording, "ledger": str(exp.ledger.path),
      "batch_global_shape": list(batch[0].shape),
      "batch_local_rows": sum(s.data.shape[0] for s in batch[0].addressable_shards),
      "steps": trial.steps, "train_fpo": trial.train_fpo,
      "train_examples": trial.train_examples, "w": w.tolist(),
  }
  exp.close()
  with open(out, "w") as f:
    json.dump(result, f)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
