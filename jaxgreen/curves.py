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
import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxgreen._src.account.ledger import Ledger
from jaxgreen._src.report import number, table

if TYPE_CHECKING:  # matplotlib is the optional [plot] extra
  from jaxgreen._src._figure import Figure

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
    from jaxgreen._src._figure import Figure  # shows inline in a notebook, without pyplot
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
  _draw_training(fig.subplots(), rows, metric)
  fig.tight_layout()
  return fig


def _draw_training(ax: Any, rows: Sequence[dict[str, Any]], metric: str) -> None:
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


def budget_figure(rows: Sequence[dict[str, Any]]) -> Figure:
  """Expected best score vs budget, in trials (left) and in training FPO (right).

  Args:
    rows: as returned by :func:`budget_curve` (at least one).
  """
  fig = _figure(figsize=(10, 4))
  axes = fig.subplots(1, 2, sharey=True)
  _draw_budget(axes, rows)
  fig.suptitle("expected best validation score vs budget (Dodge et al. 2019)")
  fig.tight_layout()
  return fig


def _draw_budget(axes: Sequence[Any], rows: Sequence[dict[str, Any]]) -> None:
  from matplotlib.ticker import MaxNLocator

  metric, mode = rows[0]["metric"], rows[0]["mode"]
  for ax, key, label in ((axes[0], "n_trials", "budget (trials)"),
                         (axes[1], "budget_fpo", "budget (training FPO)")):
    x = [r[key] for r in rows]
    ax.plot(x, [r["expected"] for r in rows], marker="o")
    # The band never leaves the range of observed scores (accuracy <= the best seen).
    ax.fill_between(x, [r["lower"] for r in rows], [r["upper"] for r in rows], alpha=0.2)
    ax.set_xlabel(label)
  axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))  # whole trials
  axes[0].set_ylabel(f"expected {'max' if mode == 'max' else 'min'} {metric}")


@dataclasses.dataclass(frozen=True)
class Curves:
  """The training and budget curves of one metric, as :func:`plot` returns them.

  In a notebook it shows the budget table and both figures; :meth:`figure` is the
  three panels as one ``Figure``. Iterating gives the files :func:`plot` wrote.

  Attributes:
    metric: the metric's name.
    mode: ``"max"`` (higher is better) or ``"min"``.
    training: rows of :func:`training_curves`.
    budget: rows of :func:`budget_curve`.
    paths: the files written (none without ``out_dir``).
  """

  metric: str
  mode: str
  training: tuple[dict[str, Any], ...]
  budget: tuple[dict[str, Any], ...]
  paths: tuple[Path, ...] = ()

  def __iter__(self) -> Iterator[Path]:
    return iter(self.paths)

  def __len__(self) -> int:
    return len(self.paths)

  def __bool__(self) -> bool:  # a result, even when no file was written
    return True

  def figure(self) -> Figure:
    """Training curves, then the budget curve in trials and in FPO (needs ``[plot]``)."""
    fig = _figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    _draw_training(axes[0], self.training, self.metric)
    _draw_budget(axes[1:], self.budget)
    axes[1].set_title("expected best score vs budget (Dodge et al. 2019)", fontsize=9)
    fig.tight_layout()
    return fig

  def to_pandas(self, which: str = "budget") -> Any:
    """The ``"budget"`` or ``"training"`` rows as a ``pandas.DataFrame`` (needs pandas:
    ``pip install 'jaxgreen[pandas]'``)."""
    if which not in ("budget", "training"):
      raise ValueError(f"to_pandas(which={which!r}): use 'budget' or 'training'")
    from jaxgreen._src.report import data_frame

    rows = self.budget if which == "budget" else self.training
    return data_frame([dict(r) for r in rows], "Curves.to_pandas")

  def _table(self) -> tuple[list[str], list[list[str]]]:
    heads = ["trials", "budget FPO", f"expected {self.mode} {self.metric}", "std"]
    return heads, [[str(r["n_trials"]), number(r["budget_fpo"]), f"{r['expected']:.4g}",
                    f"{r['std']:.3g}"] for r in self.budget]

  def __str__(self) -> str:
    return (f"Expected best {self.metric} vs budget ({len(self.training)} logged values)\n"
            + table(*self._table()))

  def __repr__(self) -> str:
    best = self.budget[-1]["expected"] if self.budget else None
    return (f"Curves(metric={self.metric!r}, mode={self.mode!r}, trials={len(self.budget)}, "
            f"expected_best={best!r}, files={len(self.paths)})")

  def _repr_pretty_(self, p: Any, cycle: bool) -> None:
    p.text(repr(self) if cycle else str(self))

  def _repr_html_(self) -> str:
    from jaxgreen._src import _html

    parts = [_html.table(*self._table())]
    try:
      parts.append(_html.image(self.figure()._repr_png_(), "training and budget curves"))
    except ImportError:
      parts.append(_html.notes(["figures need matplotlib: pip install 'jaxgreen[plot]'"]))
    parts.append(_html.notes([str(p) for p in self.paths]))
    return _html.fragment(*parts, title=f"Expected best {self.metric} vs budget")


def plot(ledger: Ledger, out_dir: str | os.PathLike | None = None, metric: str | None = None,
         *, mode: str = "max", experiment: str | None = None, png: bool = True) -> Curves:
  """The curves of ``metric``; with ``out_dir``, also written there as
  ``training_curves.csv``, ``budget_curve.csv`` and, with matplotlib, PNGs.

  The PNGs are :func:`training_figure` and :func:`budget_figure` of the same rows.

  Returns:
    :class:`Curves`: shown in a notebook as a table and figures; ``.figure()`` is a
    ``Figure``; iterating gives the paths written. CSVs are written first, so they
    exist even when matplotlib is missing (then ImportError names the ``[plot]`` extra).
  """
  metric = _pick_metric(ledger, metric, experiment)
  train = training_curves(ledger, metric, experiment)
  budget = budget_curve(ledger, metric, mode=mode, experiment=experiment)
  paths: list[Path] = []
  if out_dir is not None:
    out = Path(out_dir)
    paths += [write_csv(train, out / "training_curves.csv"),
              write_csv(budget, out / "budget_curve.csv")]
    if png:
      paths.append(out / "training_curves.png")
      training_figure(train, metric).savefig(paths[-1], dpi=120)
      paths.append(out / "budget_curve.png")
      budget_figure(budget).savefig(paths[-1], dpi=120)
  return Curves(metric, mode, tuple(train), tuple(budget), tuple(paths))
