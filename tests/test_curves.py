"""Budget/performance curves: Dodge et al.'s expected max, training curves, plots."""

from __future__ import annotations

import csv
import math

import pytest

from jaxgreen import curves
from jaxgreen._src.account import Ledger
from jaxgreen._src.cli import main


def test_expected_max_two_scores_by_hand():
  (n1, m1, v1), (n2, m2, v2), (n3, m3, v3) = curves.expected_max([0.7, 0.5], n_max=3)
  assert (n1, n2, n3) == (1, 2, 3)
  # n=1: the mean, (0.5 + 0.7)/2; variance (0.25 + 0.49)/2 − 0.6²
  assert m1 == pytest.approx(0.6) and v1 == pytest.approx(0.37 - 0.36)
  # n=2: P(max=0.5) = (1/2)² = 1/4, P(max=0.7) = 1 − 1/4 = 3/4
  assert m2 == pytest.approx(0.5 / 4 + 0.7 * 3 / 4)  # 0.65
  assert v2 == pytest.approx(0.25 / 4 + 0.49 * 3 / 4 - 0.65**2)  # 0.0075
  # n=3: P(max=0.5) = 1/8
  assert m3 == pytest.approx(0.5 / 8 + 0.7 * 7 / 8)


def test_expected_max_three_scores_by_hand():
  (_, m1, _), (_, m2, v2), _ = curves.expected_max([3, 1, 2])
  assert m1 == pytest.approx(2.0)  # (1 + 2 + 3)/3
  # n=2: weights (1/3)² = 1/9, (2/3)² − 1/9 = 3/9, 1 − 4/9 = 5/9
  assert m2 == pytest.approx((1 * 1 + 2 * 3 + 3 * 5) / 9)  # 22/9
  assert v2 == pytest.approx((1 * 1 + 4 * 3 + 9 * 5) / 9 - (22 / 9) ** 2)  # 38/81


def test_expected_max_limits_and_errors():
  assert curves.expected_max([0.4]) == [(1, 0.4, 0.0)]  # one trial: no spread
  last = curves.expected_max([0.1, 0.2, 0.9], n_max=200)[-1]
  assert last[1] == pytest.approx(0.9, abs=1e-9)  # many draws: the best score
  means = [m for _, m, _ in curves.expected_max([0.3, 0.1, 0.8, 0.5], n_max=10)]
  assert means == sorted(means)  # more budget never lowers the expected max
  with pytest.raises(ValueError, match="at least one score"):
    curves.expected_max([])
  with pytest.raises(ValueError, match="NaN"):
    curves.expected_max([0.1, math.nan])
  for bad in (0, 2.5, True):
    with pytest.raises(ValueError, match="n_max="):
      curves.expected_max([0.1, 0.2], n_max=bad)


def _ledger(path):
  """3 trials, train FPO 100, 200, 300 (the last failed, no metric); val_acc logged."""
  led = Ledger(path)

  def fill(c):
    c.execute("INSERT INTO runs (id, experiment, device_kind, device_count) "
              "VALUES ('r', 'e', 'cpu', 1)")
    c.execute("INSERT INTO signatures VALUES ('s', 'f', '', '10', '5', '5', 1, '{}')")
    for i, (tid, status, steps) in enumerate((("a", "completed", 10), ("b", "stopped", 20),
                                              ("c", "failed", 30))):
      c.execute("INSERT INTO trials (id, run_id, experiment, name, status, started, ended)"
                " VALUES (?, 'r', 'e', ?, ?, ?, ?)", (tid, tid, status, i, i + 1))
      c.execute("INSERT INTO steps VALUES (?, ?, 's', 'train', ?, ?, 0, 0)",
                (tid, tid, steps, steps))
    for mid, tid, step, fpo, value in (("1", "a", 5, 50, 0.5), ("2", "a", 10, 100, 0.6),
                                       ("3", "b", 10, 100, 0.8), ("4", "b", 20, 200, 0.7)):
      c.execute("INSERT INTO metrics VALUES (?, ?, ?, 'val_acc', ?, ?, ?, ?)",
                (mid, tid, step, value, str(fpo), step, step))

  led.write(fill)
  return led


def test_budget_curve_in_trials_and_fpo(tmp_path):
  with _ledger(tmp_path / "c.sqlite") as led:
    rows = curves.budget_curve(led, "val_acc")
    loss_rows = curves.budget_curve(led, "val_acc", mode="min")
  # scores: best per scored trial, a: 0.6, b: 0.8 (c failed before logging)
  assert [r["n_trials"] for r in rows] == [1, 2]
  assert rows[0]["expected"] == pytest.approx(0.7)  # (0.6 + 0.8)/2
  assert rows[1]["expected"] == pytest.approx(0.6 / 4 + 0.8 * 3 / 4)
  assert rows[0]["std"] == pytest.approx(0.1)  # sqrt((0.36 + 0.64)/2 − 0.49)
  # budget per trial: (100 + 200 + 300) FPO / 3 trials, the failed one included
  assert [r["budget_fpo"] for r in rows] == [200.0, 400.0]
  assert loss_rows[1]["expected"] == pytest.approx(0.5 * 3 / 4 + 0.7 / 4)  # lowest values


def test_training_curves_and_metric_errors(tmp_path):
  with _ledger(tmp_path / "c.sqlite") as led:
    rows = curves.training_curves(led)  # the only metric is picked
    assert [(r["trial"], r["train_fpo"], r["value"]) for r in rows] == [
        ("a", 50, 0.5), ("a", 100, 0.6), ("b", 100, 0.8), ("b", 200, 0.7)]
    with pytest.raises(ValueError, match="never logged"):
      curves.training_curves(led, "bleu")
    with pytest.raises(ValueError, match="mode="):
      curves.budget_curve(led, mode="best")


def test_plot_cli_writes_csv_and_png(tmp_path, capsys):
  _ledger(tmp_path / "c.sqlite").close()
  out = tmp_path / "out"
  assert main(["ledger", "plot", str(tmp_path / "c.sqlite"), "-o", str(out),
               "--csv-only"]) == 0
  with open(out / "budget_curve.csv") as f:
    rows = list(csv.DictReader(f))
  assert [float(r["budget_fpo"]) for r in rows] == [200.0, 400.0]
  assert not (out / "budget_curve.png").exists()
  pytest.importorskip("matplotlib", reason="PNG output needs the [plot] extra")
  assert main(["ledger", "plot", str(tmp_path / "c.sqlite"), "-o", str(out)]) == 0
  for name in ("budget_curve.png", "training_curves.png"):
    assert (out / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_trials_example_runs(tmp_path):
  import os
  import subprocess
  import sys

  script = os.path.join(os.path.dirname(__file__), "..", "examples", "trials.py")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, script, "--ledger", str(tmp_path / "g.sqlite"),
                        "--out", str(tmp_path / "curves"), "--epochs", "2"],
                       capture_output=True, text=True, env=env, timeout=300, check=True)
  assert "E x D x H" in out.stdout
  assert (tmp_path / "curves" / "budget_curve.csv").exists()
  with Ledger(tmp_path / "g.sqlite", readonly=True) as led:
    assert led.price_tag("mlp-sweep").h == 4  # four learning rates


def test_nan_metrics_of_a_diverged_trial_never_crash_a_plot(tmp_path, capsys):
  from jaxgreen._src.account import Experiment

  path = tmp_path / "nan.sqlite"
  exp = Experiment("diverged", ledger=path)
  for v in (0.5, float("nan"), 0.7):  # lr too high: the second trial diverged
    with exp.trial() as t:
      t.log(1, val_acc=v)
  exp.close()
  with Ledger(path, readonly=True) as led:
    values = [r["value"] for r in curves.training_curves(led, "val_acc")]
    rows = curves.budget_curve(led, "val_acc")
  assert values[0] == 0.5 and math.isnan(values[1]) and values[2] == 0.7
  assert [r["n_trials"] for r in rows] == [1, 2]  # the NaN trial is not scored
  assert rows[0]["expected"] == pytest.approx(0.6)
  assert main(["ledger", "plot", str(path), "-o", str(tmp_path / "out"), "--csv-only"]) == 0
  pytest.importorskip("matplotlib", reason="PNG output needs the [plot] extra")
  assert main(["ledger", "plot", str(path), "-o", str(tmp_path / "png")]) == 0
  assert (tmp_path / "png" / "budget_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_budget_band_stays_in_the_observed_range_with_whole_trial_ticks(tmp_path):
  with _ledger(tmp_path / "c.sqlite") as led:
    rows = curves.budget_curve(led, "val_acc")
    loss = curves.budget_curve(led, "val_acc", mode="min")
    # n = 2: 0.75 ± 0.0866 would reach 0.8366, above the best score seen (0.8)
    assert rows[1]["expected"] + rows[1]["std"] > 0.8
    assert (rows[1]["lower"], rows[1]["upper"]) == (pytest.approx(0.75 - rows[1]["std"]),
                                                    0.8)
    assert all(0.6 <= r["lower"] <= r["upper"] <= 0.8 for r in rows)
    assert all(0.5 <= r["lower"] <= r["upper"] <= 0.7 for r in loss)  # lowest values
    pytest.importorskip("matplotlib", reason="PNG output needs the [plot] extra")
    fig = curves.budget_figure(rows)
  ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 2]
  assert ticks == [1.0, 2.0]  # trials are whole numbers
  band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
  assert band.max() <= 0.8 + 1e-9 and band.min() >= 0.6 - 1e-9


def test_plotting_leaves_the_matplotlib_backend_and_pyplot_alone(tmp_path):
  pytest.importorskip("matplotlib", reason="PNG output needs the [plot] extra")
  import os
  import subprocess
  import sys
  import textwrap

  with _ledger(tmp_path / "c.sqlite"):
    pass
  # A fresh interpreter: whether pyplot was imported is a per-process fact.
  code = textwrap.dedent(f"""
      import sys
      import matplotlib
      matplotlib.use("svg")
      from jaxgreen import curves
      from jaxgreen._src.account import Ledger
      with Ledger({str(tmp_path / "c.sqlite")!r}, readonly=True) as led:
        paths = curves.plot(led, {str(tmp_path / "out")!r}, "val_acc")
        fig = curves.training_figure(curves.training_curves(led, "val_acc"), "val_acc")
      assert type(fig).__name__ == "Figure", type(fig)
      assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
      assert "matplotlib.pyplot" not in sys.modules
      print(len(paths))
  """)
  env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=env | {"JAX_PLATFORMS": "cpu"}, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split()[-1] == "4"
  assert (tmp_path / "out" / "budget_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_curves_never_pool_experiments(tmp_path, capsys):
  from jaxgreen._src.account import Experiment

  path = tmp_path / "two.sqlite"
  for name, acc in (("mlp", 0.9), ("cnn", 0.5)):
    with Experiment(name, ledger=path) as exp, exp.trial() as t:
      t.log(1, val_acc=acc)
  with Ledger(path, readonly=True) as led:
    with pytest.raises(ValueError, match=r"2 experiments.*experiment=NAME"):
      curves.budget_curve(led, "val_acc")
    assert curves.budget_curve(led, "val_acc", experiment="mlp")[0]["expected"] == 0.9
  assert main(["ledger", "plot", str(path), "-o", str(tmp_path / "o"), "--csv-only"]) == 2
  assert "--experiment NAME" in capsys.readouterr().err
  assert main(["ledger", "plot", str(path), "-o", str(tmp_path / "o"), "--csv-only",
               "--experiment", "cnn"]) == 0


def test_plot_returns_the_curves_shown_inline_with_or_without_files(tmp_path):
  with _ledger(tmp_path / "c.sqlite") as led:
    shown = curves.plot(led, metric="val_acc")  # nothing written
    written = curves.plot(led, tmp_path / "out", "val_acc", png=False)
  assert list(shown) == [] and bool(shown)  # a result, though no file was written
  assert [p.name for p in written] == ["training_curves.csv", "budget_curve.csv"]
  assert shown.budget == written.budget and len(shown.training) == 4  # 4 logged values
  # Trial scores 0.6 (a) and 0.8 (b); budget per trial = mean train FPO over all 3
  # trials, failed included: (100 + 200 + 300) / 3 = 200.
  assert [(r["n_trials"], r["budget_fpo"]) for r in shown.budget] == [(1, 200), (2, 400)]
  assert repr(shown).startswith("Curves(metric='val_acc', mode='max', trials=2,")
  assert "400" in str(shown) and "0.75" in str(shown)  # n = 2: 0.6/4 + 0.8 * 3/4
  pytest.importorskip("matplotlib", reason="figures need the [plot] extra")
  fig = shown.figure()
  assert len(fig.axes) == 3 and fig._repr_png_()[:4] == b"\x89PNG"
  assert curves.budget_figure(list(shown.budget))._repr_png_()[:4] == b"\x89PNG"
  out = shown._repr_html_()
  assert "data:image/png;base64," in out and "<script" not in out and ">400<" in out
  pd = pytest.importorskip("pandas", reason="to_pandas needs the [pandas] extra")
  df = shown.to_pandas()
  assert isinstance(df, pd.DataFrame) and list(df["n_trials"]) == [1, 2]
  assert len(shown.to_pandas("training")) == 4
