"""Budget/performance curves: training curves and expected max validation vs budget.

Green AI asks for budget/performance curves next to the price tag. Two are drawn
from a ledger:

* **training curves**: each trial's logged metric against its cumulative training FPO;
* **expected maximum validation score vs budget** (Dodge et al., 2019, "Show Your
  Work: Improved Reporting of Experimental Results"): with the N trials' best scores
  sorted, v_(1) <= ... <= v_(N), the expected maximum of n i.i.d. draws from their
  empirical distribution is

      E[max_n] = Σ_i v_(i) · [(i/N)^n − ((i−1)/N)^n]

  and its variance is Σ_i v_(i)² · [(i/N)^n − ((i−1)/N)^n] − E[max_n]². The budget is
  given in trials (n) and in FPO (n × mean training FPO per trial, where the mean is
  over all H trials: failed and early-stopped trials were paid for too).

The rows come from the ledger's reads; the figures are :class:`matplotlib.figure.Figure`
objects made without pyplot, so the user's matplotlib backend is never changed (a
notebook shows a returned figure inline).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxgreen.account.ledger import Ledger

if TYPE_CHECKING:  # matplotlib is the optional [plot] extra
  from matplotlib.figure import Figure

MODES = ("max", "min")


def expected_max(scores: Sequence[float], n_max: int | None = None
                 ) -> list[tuple[int, float, float]]:
  """(n, E[max_n], Var[max_n]) for n = 1 .. n_max (default N = len(scores)).

  Args:
    scores: one score per trial (e.g. its best validation accuracy).
    n_max: the largest budget in trials; may exceed N (draws are with replacement).

  Returns:
    One ``(n, mean, variance)`` per n, by Dodge et al. (2019), Equation 1.

  Example:
    >>> [(n, round(m, 4), round(v, 4)) for n, m, v in expected_max([0.5, 0.7])]
    [(1, 0.6, 0.01), (2, 0.65, 0.0075)]

    (n = 2: 0.5 · (1/4) + 0.7 · (3/4) = 0.65.)
  """
  v = sorted(float(s) for s in scores)
  n_trials = len(v)
  if n_trials == 0:
    raise ValueError("expected_max(scores=[]) needs at least one score")
  if any(math.isnan(s) for s in v):
    raise ValueError("expected_max(scores=...) contains NaN; drop failed trials first")
  n_max = n_trials if n_max is None else n_max
  if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 1:
    raise ValueError(f"expected_max(n_max={n_max!r}) must be an int >= 1, or None for "
                     f"one point per trial")
  out = []
  for n in range(1, n_max + 1):
    mean = second = 0.0
    for i, s in enumerate(v, start=1):
      w = (i / n_trials) ** n - ((i - 1) / n_trials) ** n  # P(max_n = v_(i))
      mean += w * s
      second += w * s * s
    out.append((n, mean, max(second - mean * mean, 0.0)))
  return out


def _check_experiment(ledger: Ledger, experiment: str | None) -> None:
  """Curves of several experiments are never pooled silently."""
  if experiment is not None:
    return
  names = ledger.experiments()
  if len(names) > 1:
    raise ValueError(f"the ledger {ledger.path!r} holds {len(names)} experiments {names}; "
                     f"curves never pool experiments: pass experiment=NAME "
                     f"(jaxgreen ledger plot --experiment NAME)")


def _pick_metric(ledger: Ledger, metric: str | None, experiment: str | None) -> str:
  _check_experiment(ledger, experiment)
  names = ledger.metric_names(experiment)
  if metric is None:
    if len(names) == 1:
      return names[0]
    raise ValueError(f"metric=None is ambiguous: the ledger holds metrics {names}; "
                     f"name one, e.g. metric={names[0]!r}" if names else
                     "the ledger holds no metrics; log some with trial.log(step, name=value)")
  if metric not in names:
    raise ValueError(f"metric={metric!r} was never logged; logged metrics: {names}")
  return metric


def training_curves(ledger: Ledger, metric: str | None = None,
                    experiment: str | None = None) -> list[dict[str, Any]]:
  """Rows ``trial, step, train_fpo, train_examples, metric, value`` in logging order
  (``value`` is NaN where a NaN was logged, e.g. by a diverged trial)."""
  metric = _pick_metric(ledger, metric, experiment)
  rows = ledger.metric_rows(experiment, metric)
  for r in rows:
    r["train_fpo"] = int(r["train_fpo"])
    if r["value"] is None:  # SQLite stores NaN (a diverged run) as NULL
      r["value"] = math.nan
  return rows


def budget_curve(ledger: Ledger, metric: str | None = None, *, mode: str = "max",
                 experiment: str | None = None, n_max: int | None = None
                 ) -> list[dict[str, Any]]:
  """Expected best validation score vs budget, in trials and in FPO.

  Each trial's score is its best logged value of ``metric`` (highest for
  ``mode="max"``, lowest for ``"min"``, e.g. a loss); trials that never logged it
  are not scored but their FPO still counts in the budget per trial. NaN values (a
  diverged learning rate) are skipped: a trial that logged only NaN is not scored.

  Returns:
    Rows ``n_trials, budget_fpo, expected, std, lower, upper, metric, mode`` (std =
    sqrt of the variance; ``lower``/``upper`` = expected ∓ std clipped to the range of
    the observed scores, as in Dodge et al.'s plots), one per budget n = 1 .. ``n_max``
    (default: the number of scored trials).
  """
  if mode not in MODES:
    raise ValueError(f"budget_curve(mode={mode!r}): use 'max' (accuracy) or 'min' (loss)")
  metric = _pick_metric(ledger, metric, experiment)
  tag = ledger.price_tag(experiment)
  best: dict[str, float] = {}
  for r in training_curves(ledger, metric, experiment):
    v = r["value"]
    if math.isnan(v):
      continue
    old = best.get(r["trial_id"])
    if old is None or (v > old if mode == "max" else v < old):
      best[r["trial_id"]] = v
  if not best:
    raise ValueError(f"no trial logged a number for metric={metric!r}")
  per_trial = tag.train_fpo / tag.h
  sign = 1.0 if mode == "max" else -1.0
  curve = expected_max([sign * s for s in best.values()], n_max)
  lo, hi = min(best.values()), max(best.values())
  rows = []
  for n, m, var in curve:
    mean, std = sign * m, math.sqrt(var)
    rows.append({"n_trials": n, "budget_fpo": n * per_trial, "expected": mean, "std": std,
                 "lower": min(max(mean - std, lo), hi), "upper": max(min(mean + std, hi), lo),
                 "metric": metric, "mode": mode})
  return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open("w", newline="") as f:
    if rows:
      w = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "trial_id"],
                         extrasaction="ignore")
      w.writeheader()
      w.writerows(rows)
  return path


def _figure(**kw: Any) -> Figure:
  """A new figure, without pyplot: the user's backend is left as it is."""
  try:
    from matplotlib.figure import Figure
  except ImportError as e:
    raise ImportError("plotting needs matplotlib: pip install 'jaxgreen[plot]' "
                      "(the CSV files were written without it)") from e
  return Figure(**kw)


def training_figure(rows: Sequence[dict[str, Any]], metric: str) -> Figure:
  """Training curves: each trial's ``metric`` against its cumulative training FPO.

  Args:
    rows: as returned by :func:`training_curves`.
    metric: the y axis label.
  """
  fig = _figure(figsize=(6, 4))
  ax = fig.subplots()
  by_trial: dict[str, list[dict[str, Any]]] = {}
  for r in rows:
    by_trial.setdefault(r["trial_id"], []).append(r)
  for trial in by_trial.values():
    ax.plot([r["train_fpo"] for r in trial], [r["value"] for r in trial], marker=".",
            label=trial[0]["trial"])
  ax.set_xlabel("cumulative training FPO")
  ax.set_ylabel(metric)
  ax.set_title("training curves")
  if len(by_trial) <= 10:
    ax.legend(fontsize="small")
  fig.tight_layout()
  return fig


def budget_figure(rows: Sequence[dict[str, Any]]) -> Figure:
  """Expected best score vs budget, in trials (left) and in training FPO (right).

  Args:
    rows: as returned by :func:`budget_curve` (at least one).
  """
  from matplotlib.ticker import MaxNLocator

  metric, mode = rows[0]["metric"], rows[0]["mode"]
  fig = _figure(figsize=(10, 4))
  axes = fig.subplots(1, 2, sharey=True)
  for ax, key, label in ((axes[0], "n_trials", "budget (trials)"),
                         (axes[1], "budget_fpo", "budget (training FPO)")):
    x = [r[key] for r in rows]
    ax.plot(x, [r["expected"] for r in rows], marker="o")
    # The band never leaves the range of observed scores (accuracy <= the best seen).
    ax.fill_between(x, [r["lower"] for r in rows], [r["upper"] for r in rows], alpha=0.2)
    ax.set_xlabel(label)
  axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))  # whole trials
  axes[0].set_ylabel(f"expected {'max' if mode == 'max' else 'min'} {metric}")
  fig.suptitle("expected best validation score vs budget (Dodge et al. 2019)")
  fig.tight_layout()
  return fig


def plot(ledger: Ledger, out_dir: str | os.PathLike, metric: str | None = None, *,
         mode: str = "max", experiment: str | None = None, png: bool = True) -> list[Path]:
  """Writes ``training_curves.csv``, ``budget_curve.csv`` and, with matplotlib, PNGs.

  The PNGs are :func:`training_figure` and :func:`budget_figure` of the same rows; call
  those to get the figures themselves (e.g. to show them in a notebook).

  Returns:
    The paths written. CSVs are written first, so they exist even when matplotlib
    is missing (then ImportError names the ``[plot]`` extra).
  """
  out = Path(out_dir)
  metric = _pick_metric(ledger, metric, experiment)
  train = training_curves(ledger, metric, experiment)
  budget = budget_curve(ledger, metric, mode=mode, experiment=experiment)
  paths = [write_csv(train, out / "training_curves.csv"),
           write_csv(budget, out / "budget_curve.csv")]
  if not png:
    return paths
  paths.append(out / "training_curves.png")
  training_figure(train, metric).savefig(paths[-1], dpi=120)
  paths.append(out / "budget_curve.png")
  budget_figure(budget).savefig(paths[-1], dpi=120)
  return paths
