"""Trackers fed by trials: TensorBoard, W&B (offline) and MLflow (a local store), each
read back from what it wrote; a failing sink; the step axes and flush windows."""

from __future__ import annotations

import struct
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgreen._src.account import Experiment, experiment, sinks, track

# One step of x * 2.0 + 1.0 on f32[8]: 8 MUL + 8 ADD = 16 FPO, 8 examples.
STEP_FPO = 8 + 8


def _step():
  return track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")


def _run(exp: Experiment, hparams: dict | None = None) -> None:
  """Five steps with flush_steps=2: flushes after steps 2 and 4, logs after steps 2
  and 3, the end after step 5."""
  step, x = _step(), jnp.ones(8)
  with exp.trial(hparams or {"lr": 0.1}) as trial:
    step(x)
    step(x)                              # flush window: 2 tracked steps
    trial.log(10, val_loss=0.5)
    step(x)
    trial.log(20, val_loss=0.25)
    step(x)                              # flush window: 4 tracked steps
    step(x)                              # the end: 5 tracked steps


# jaxgreen's series at tracked steps 2 (flush), 3 (log), 4 (flush), 5 (end); the log at
# step 10 adds no point (no step ran since the flush at 2).
PFPO_POINTS = [(n, n * STEP_FPO / 1e15) for n in (2, 3, 4, 5)]  # 3.2e-14 ... 8e-14
USER_POINTS = [(10, 0.5), (20, 0.25)]


def _tfrecords(path) -> list[bytes]:
  """The records of a TFRecord file: u64 length, u32 CRC, data, u32 CRC."""
  out, data, i = [], path.read_bytes(), 0
  while i < len(data):
    (n,) = struct.unpack("<Q", data[i:i + 8])
    out.append(data[i + 12:i + 12 + n])
    i += 12 + n + 4
  return out


def _events(folder) -> tuple[dict[str, list[tuple[int, float]]], dict[str, bytes]]:
  """Scalars by tag as (step, value), and the plugin data of other summaries, of the
  event files in ``folder``."""
  from tensorboardX.proto.event_pb2 import Event

  scalars: dict[str, list[tuple[int, float]]] = {}
  plugins: dict[str, bytes] = {}
  for f in sorted(folder.glob("events.out.tfevents.*")):
    for rec in _tfrecords(f):
      event = Event.FromString(rec)
      for v in event.summary.value:
        if v.WhichOneof("value") == "simple_value":
          scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
        else:
          plugins[v.tag] = v.metadata.plugin_data.content
  return scalars, plugins


def test_tensorboard_series_are_exact_cumulative_fpo(tmp_path):
  pytest.importorskip("tensorboardX")
  from tensorboardX.proto.api_pb2 import Status
  from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

  exp = Experiment("tb", ledger=None, flush_steps=2, flush_seconds=3600,
                   sinks=[sinks.TensorBoard(tmp_path / "runs")])
  _run(exp)
  with pytest.raises(RuntimeError), exp.trial({"lr": 1.0}, name="diverged"):
    raise RuntimeError("nan loss")
  with exp.trial({"lr": 0.5}, name="spot") as trial:
    trial.end("preempted", "SIGTERM")
  exp.close()
  folders = sorted(p for p in (tmp_path / "runs").iterdir())
  assert [p.name.rsplit("-", 1)[0] for p in folders] == ["diverged", "lr=0.1", "spot"]
  scalars, plugins = _events(folders[1])
  # TensorBoard scalars are float32: 2 x 16 FPO / 1e15 = 3.2e-14, then 4.8e-14, ...
  assert scalars["jaxgreen/train_pfpo"] == [(n, np.float32(v)) for n, v in PFPO_POINTS]
  assert scalars["jaxgreen/train_examples"] == [(n, 8.0 * n) for n, _ in PFPO_POINTS]
  assert scalars["val_loss"] == USER_POINTS
  end = HParamsPluginData.FromString(plugins["_hparams_/session_end_info"])
  start = HParamsPluginData.FromString(plugins["_hparams_/session_start_info"])
  assert end.session_end_info.status == Status.Value("STATUS_SUCCESS")
  assert start.session_start_info.hparams["lr"].number_value == 0.1
  for folder, status in ((folders[0], "STATUS_FAILURE"), (folders[2], "STATUS_UNKNOWN")):
    _, plugins = _events(folder)
    end = HParamsPluginData.FromString(plugins["_hparams_/session_end_info"])
    assert end.session_end_info.status == Status.Value(status)


def _wandb_records(path):
  """The records of a W&B ``.wandb`` file: a 7-byte header (":W&B", magic, version),
  then LevelDB log chunks (CRC32C u32, length u16, type u8) in 32 KiB blocks."""
  from wandb.proto.wandb_internal_pb2 import Record

  data, block, i, out, part = path.read_bytes(), 32768, 7, [], b""
  while i + 7 <= len(data):
    if block - i % block < 7:  # a block's tail too short for a header is padding
      i += block - i % block
      continue
    n, kind = struct.unpack("<HB", data[i + 4:i + 7])
    part += data[i + 7:i + 7 + n]
    i += 7 + n
    if kind in (1, 4):  # FULL or LAST
      out.append(Record.FromString(part))
      part = b""
  return out


def test_wandb_offline_run_has_the_series_and_the_fpo_axis(tmp_path, monkeypatch):
  wandb = pytest.importorskip("wandb")
  for k, v in {"WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_DISABLE_GIT": "true",
               "WANDB_DISABLE_CODE": "true", "WANDB_DIR": str(tmp_path)}.items():
    monkeypatch.setenv(k, v)
  exp = Experiment("wb", ledger=None, flush_steps=2, flush_seconds=3600,
                   sinks=[sinks.WandB(project="jaxgreen-test", mode="offline",
                                      dir=str(tmp_path))])
  _run(exp)
  with exp.trial({"lr": 0.5}, name="spot") as trial:
    trial.end("preempted", "SIGTERM")
  exp.close()
  wandb.teardown()  # finish() may return before wandb's service wrote the file; this waits
  runs = {}
  for path in tmp_path.glob("wandb/offline-run-*/run-*.wandb"):
    records = _wandb_records(path)
    (run,) = [r.run for r in records if r.HasField("run")]
    runs[run.display_name] = records
  assert [r.exit.exit_code for r in runs["spot"] if r.HasField("exit")] == [143]
  assert any(r.HasField("preempting") for r in runs["spot"])
  records = runs["lr=0.1"]
  rows = [{item.nested_key[0] if item.nested_key else item.key: item.value_json
           for item in r.history.item} for r in records if r.HasField("history")]
  # Rows: flush at 2, log at 10 (step 2), log at 20 (step 3), flush at 4, end at 5.
  pfpo = [float(r["jaxgreen/train_pfpo"]) for r in rows]
  assert pfpo == [n * STEP_FPO / 1e15 for n in (2, 2, 3, 4, 5)]
  assert [(int(r["step"]), float(r["val_loss"])) for r in rows if "val_loss" in r] == USER_POINTS
  metrics = [r.metric for r in records if r.HasField("metric")]
  assert any(m.name == "jaxgreen/train_pfpo" for m in metrics)
  assert any(m.glob_name == "*" and m.step_metric == "jaxgreen/train_pfpo" for m in metrics)
  (run,) = [r.run for r in records if r.HasField("run")]
  assert run.display_name == "lr=0.1" and run.run_group == "wb"
  assert [r.exit.exit_code for r in records if r.HasField("exit")] == [0]


def test_mlflow_local_store_reads_back(tmp_path, monkeypatch):
  pytest.importorskip("mlflow")
  from mlflow.tracking import MlflowClient

  monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store
  uri = (tmp_path / "mlruns").as_uri()
  exp = Experiment("ml", ledger=None, flush_steps=2, flush_seconds=3600,
                   sinks=[sinks.MLflow(tracking_uri=uri)])
  _run(exp)
  with exp.trial({"lr": 1.0}, name="preempted") as trial:
    trial.end("preempted", "SIGTERM")
  exp.close()
  client = MlflowClient(uri)
  runs = {r.info.run_name: r for r in client.search_runs(
      [client.get_experiment_by_name("ml").experiment_id])}
  run = runs["lr=0.1"]
  history = client.get_metric_history(run.info.run_id, "jaxgreen/train_pfpo")
  assert [(m.step, m.value) for m in history] == PFPO_POINTS  # float64: exact
  history = client.get_metric_history(run.info.run_id, "val_loss")
  assert [(m.step, m.value) for m in history] == USER_POINTS
  assert run.data.params == {"lr": "0.1"}
  assert (run.info.status, run.data.tags["jaxgreen.status"]) == ("FINISHED", "completed")
  assert runs["preempted"].info.status == "KILLED"


class Broken(sinks.Sink):
  def log(self, trial, step, values):
    raise OSError("tracker server unreachable")


def _price(exp):
  (t,) = exp.price_tag().trials
  return t.train_fpo, t.train_examples, t.train_steps, t.status


def test_failing_sink_warns_once_and_changes_nothing(tmp_path):
  events = []
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    exp = Experiment("broken", ledger=tmp_path / "a.sqlite", flush_steps=1,
                     sinks=[Broken(), lambda *a: events.append(a[0])])
    _run(exp)
  plain = Experiment("broken", ledger=tmp_path / "b.sqlite", flush_steps=1)
  _run(plain)
  assert _price(exp) == _price(plain) == (5 * STEP_FPO, 5 * 8, 5, "completed")
  broken = [w for w in caught if "tracker server unreachable" in str(w.message)]
  assert len(broken) == 1 and "disabled" in str(broken[0].message)
  # The other sink goes on: flushes after each of the 5 steps, and 2 logs.
  assert events == ["start"] + ["log"] * (5 + 2) + ["end"]
  exp.close()
  plain.close()


def test_function_sink_sees_flush_windows_not_every_step():
  calls = []
  exp = Experiment("fn", ledger=None, flush_steps=3, flush_seconds=3600,
                   sinks=lambda event, trial, step, values: calls.append((event, step, values)))
  step, x = _step(), jnp.ones(8)
  with exp.trial({"lr": 0.1}):
    for _ in range(7):
      step(x)
  exp.close()
  # Windows end at steps 3 and 6; the end adds step 7.
  logged = [(s, v["jaxgreen/train_pfpo"]) for e, s, v in calls if e == "log"]
  assert logged == [(n, n * STEP_FPO / 1e15) for n in (3, 6, 7)]
  # jaxgreen's values only; steps after the first (which compiles) are timed, so the
  # rate is known (MFU too where the chip's peak is: not on a CPU).
  own = {"jaxgreen/train_pfpo", "jaxgreen/train_examples", "jaxgreen/tracked_steps",
         "jaxgreen/fpo_per_s_per_device", "jaxgreen/mfu", "jaxgreen/hfu"}
  for e, _, v in calls:
    if e == "log":
      assert set(v) <= own and v["jaxgreen/fpo_per_s_per_device"] > 0
  assert [e for e, *_ in calls] == ["start", "log", "log", "log", "end"]


def test_throughput_values_when_timed_and_known(monkeypatch):
  from jaxgreen._src.account.throughput import Throughput

  # 4 timed steps x 16 FPO in 2 s on 1 device: 32 FPO/s; a peak of 64 FLOP/s: HFU 0.5;
  # 12 model FPO per step (4 rematerialised): 24 FPO/s, MFU 0.375.
  tp = Throughput(steps=4, seconds=2.0, fpo=64, fpo_per_device=64.0, chip="x", peak=64.0,
                  model_fpo=48, model_fpo_per_device=48.0)
  monkeypatch.setattr(experiment.Trial, "throughput", property(lambda self: tp))
  seen = []
  exp = Experiment("tp", ledger=None, sinks=lambda e, t, s, v: seen.append(v))
  with exp.trial() as trial:
    trial.log(1, acc=1.0)
  exp.close()
  assert seen[1]["jaxgreen/fpo_per_s_per_device"] == 4 * 16 / 2
  assert seen[1]["jaxgreen/hfu"] == 32 / 64
  assert seen[1]["jaxgreen/mfu"] == 24 / 64


def test_measured_energy_in_a_known_region_sends_co2e(monkeypatch):
  class Meter:  # 1 kWh between start and stop
    available = True

    def start(self):
      pass

    def stop(self):
      return 3.6e6

  monkeypatch.setattr(experiment, "NvmlMeter", Meter)
  seen = []
  exp = Experiment("co2", ledger=None, region="FR", sinks=lambda e, t, s, v: seen.append(v))
  with exp.trial():
    pass
  exp.close()
  # 1 kWh x 44 gCO2e/kWh (France, Ember 2024) x PUE 1.56 (industry average)
  assert [v["jaxgreen/co2e_g"] for v in seen if "jaxgreen/co2e_g" in v] == [
      pytest.approx(44 * 1.56)]


def test_only_the_recording_process_calls_sinks(monkeypatch):
  info = experiment._device_info()
  monkeypatch.setattr(experiment, "_device_info", lambda: info | {"process_index": 1})
  calls = []
  exp = Experiment("other-host", ledger=None, flush_steps=1, sinks=[lambda *a: calls.append(a)])
  step = _step()
  with exp.trial() as trial:
    step(jnp.ones(8))
    trial.log(1, acc=1.0)
  exp.close()
  assert not exp.recording and calls == []


def test_bad_sinks_name_the_fix():
  with pytest.raises(TypeError, match="is a class; pass an instance"):
    Experiment("bad", ledger=None, sinks=[sinks.Sink])
  with pytest.raises(TypeError, match=r"sinks=\[\.\.\., 42"):
    Experiment("bad", ledger=None, sinks=[42])


EXIT_SCRIPT = """
import sys, jax, jax.numpy as jnp
from jaxgreen._src.account import Experiment, sinks, track
step = track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
exp = Experiment("exit", ledger=None, flush_steps=2, sinks=[sinks.TensorBoard(sys.argv[1])])
trial = exp.trial({"lr": 0.1}).start()
for _ in range(3):
  step(jnp.ones(8))
"""  # exits with the trial running: the experiment ends it failed


def test_tensorboard_run_ends_failed_at_exit(tmp_path):
  pytest.importorskip("tensorboardX")
  import subprocess
  import sys

  from tensorboardX.proto.api_pb2 import Status
  from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

  subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(tmp_path)], check=True, timeout=120)
  (folder,) = tmp_path.iterdir()
  scalars, plugins = _events(folder)
  # The flush after step 2 (32 FPO), and the last window at exit: 3 x 16 = 48 FPO.
  assert scalars["jaxgreen/train_pfpo"] == [(2, np.float32(32 / 1e15)), (3, np.float32(48 / 1e15))]
  end = HParamsPluginData.FromString(plugins["_hparams_/session_end_info"])
  assert end.session_end_info.status == Status.Value("STATUS_FAILURE")
