"""Optuna studies as jaxgreen experiments: every Optuna trial is a trial of H.

Green AI prices a result as Cost(R) ∝ E · D · H, where H counts the hyperparameter
trials. With :func:`objective`, each call of an Optuna objective runs inside
``exp.trial(...)`` of a :class:`~jaxgreen._src.account.experiment.Experiment`, so the steps
tracked with ``@jaxgreen.track`` are attributed to it:

* a completed Optuna trial is ``completed``; a pruned one (``optuna.TrialPruned``) is
  ``stopped`` (stopped early, still in H and in the cost); an exception, or a value
  Optuna records as failed (None, NaN), is ``failed``;
* the trial's training FPO and examples are stored on the Optuna trial as user
  attributes (``train_fpo``, ``train_examples``, ``eval_fpo``; the rest under
  ``jaxgreen``), so ``study.trials_dataframe()`` shows ``user_attrs_train_fpo``;
* with ``fpo_objective=True`` the training FPO is returned as an extra objective value,
  for multi-objective studies such as ``directions=["maximize", "minimize"]``.

The study's storage is then a record of its own: :func:`price_tag_from_study`,
:func:`budget_curve_from_study` and :func:`pareto_figure` read it, so workers on several
hosts sharing one Optuna storage (an RDB or journal) need no shared ledger. Optuna is
the optional ``[optuna]`` extra; it is imported only inside these functions.

Example::

  from jaxgreen._src.account.optuna import objective, pareto_figure, price_tag_from_study

  exp = jaxgreen.Experiment("optuna-mlp", ledger="green.sqlite")

  @objective(exp, fpo_objective=True)
  def train(trial):
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    ...                                   # tracked train steps
    return val_acc

  study = optuna.create_study(directions=["maximize", "minimize"],
                              storage="sqlite:///optuna.db", study_name="mlp")
  study.optimize(train, n_trials=20)
  print(price_tag_from_study(study).table())
  pareto_figure(study).savefig("pareto.png")
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxgreen._src.account.experiment import Experiment, Trial
from jaxgreen._src.account.pricetag import PriceTag, TrialCost

if TYPE_CHECKING:  # optuna is the optional [optuna] extra, matplotlib the [plot] one
  from matplotlib.figure import Figure

# Optuna's trial states as jaxgreen statuses; WAITING trials (enqueued, never run) are
# not in H.
_STATUS = {"COMPLETE": "completed", "PRUNED": "stopped", "FAIL": "failed",
           "RUNNING": "running"}


def _optuna() -> Any:
  try:
    import optuna
  except ImportError as e:
    raise ImportError("jaxgreen._src.account.optuna needs Optuna: pip install 'jaxgreen[optuna]' "
                      "(or pip install 'optuna>=4')") from e
  return optuna


def objective(exp: Experiment, fn: Callable[[Any], Any] | None = None, *,
              fpo_objective: bool = False,
              suggest: Callable[[Any], Any] | None = None) -> Any:
  """Wraps an Optuna objective so each call is one trial of ``exp``.

  Usable as ``objective(exp, fn)`` or as a decorator ``@objective(exp, ...)``.

  Args:
    exp: the :class:`~jaxgreen.Experiment` the trials are recorded in.
    fn: the objective, ``fn(optuna_trial) -> value(s)``; its tracked steps are
      attributed to the trial ``optuna-{number}``.
    fpo_objective: also return the trial's training FPO as the last objective value
      (for ``directions=[..., "minimize"]``). Optuna stores values as floats; the exact
      integer is the user attribute ``train_fpo``.
    suggest: ``suggest(optuna_trial)``, called before the trial starts, making the
      ``trial.suggest_*`` calls of ``fn`` (with the same names and ranges: Optuna
      returns the same value again), so the trial's ``hparams`` in the ledger hold
      them from its start. Without it the ledger's row gets them when the trial ends
      (until then it holds those known at the start: enqueued or fixed ones).

  Returns:
    The wrapped objective, to pass to ``study.optimize``.
  """
  if not isinstance(exp, Experiment):
    raise TypeError(f"objective(exp={exp!r}) must be a jaxgreen.Experiment, e.g. "
                    f"jaxgreen.Experiment('sweep', ledger='green.sqlite')")
  if fn is None:
    return functools.partial(objective, exp, fpo_objective=fpo_objective, suggest=suggest)
  if not callable(fn):
    raise TypeError(f"objective(fn={fn!r}) must be a function of an Optuna trial")
  if suggest is not None and not callable(suggest):
    raise TypeError(f"objective(suggest={suggest!r}) must be a function of an Optuna "
                    f"trial that calls trial.suggest_*, or None")

  @functools.wraps(fn)
  def wrapped(trial: Any) -> Any:
    optuna = _optuna()
    if suggest is not None:
      suggest(trial)
    jt = exp.trial(dict(trial.params), name=f"optuna-{trial.number}")
    trial.set_user_attr("jaxgreen", {"trial": jt.id, "experiment": exp.name})
    pruned: BaseException | None = None
    value: Any = None
    started = time.time()
    try:
      with jt:
        try:
          value = _call(fn, trial, jt)
        except optuna.TrialPruned as e:
          jt.stop_early(f"pruned by Optuna: {e}" if str(e) else "pruned by Optuna")
          pruned = e
        else:
          _fail_if_optuna_would(jt, value)
    finally:
      _record(trial, exp, jt, time.time() - started)
    if pruned is not None:
      raise pruned
    return _with_fpo(value, jt.train_fpo) if fpo_objective else value

  return wrapped


def _call(fn: Callable[[Any], Any], trial: Any, jt: Trial) -> Any:
  """Runs the objective; the parameters it suggested become the trial's hparams in the
  ledger (written with the trial's end), whatever way it ends."""
  try:
    return fn(trial)
  finally:
    if dict(trial.params) != jt.hparams:
      jt.update_hparams(trial.params)


def _fail_if_optuna_would(jt: Trial, value: Any) -> None:
  """Ends the trial failed when Optuna records its value as failed (None or NaN)."""
  values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
  try:
    bad = any(v is None or math.isnan(float(v)) for v in values)
  except (TypeError, ValueError):
    bad = True
  if bad:
    jt.end("failed", f"the objective returned {value!r}, which Optuna records as failed")


def _with_fpo(value: Any, fpo: int) -> tuple[Any, ...]:
  if isinstance(value, Sequence) and not isinstance(value, str):
    return (*value, float(fpo))
  return (value, float(fpo))


def _ledger_cost(exp: Experiment, jt: Trial) -> TrialCost | None:
  """The trial as its ledger reports it (eval FPO, exactness, wall-clock, devices), or
  None when it is not committed yet (a busy ledger keeps it for a later write)."""
  try:
    tag = exp.ledger.price_tag(exp.name, run=exp.run_id)
  except Exception:  # a report must never fail the Optuna trial
    return None
  return next((c for c in tag.trials if c.id == jt.id), None)


def _record(trial: Any, exp: Experiment, jt: Trial, wall_s: float) -> None:
  """Stores the trial's cost on the Optuna trial (its user attributes)."""
  cost = _ledger_cost(exp, jt)
  info: dict[str, Any] = {"trial": jt.id, "experiment": exp.name, "status": jt.status,
                          "steps": jt.steps, "wall_s": wall_s, "exact": None}
  eval_fpo = 0
  if cost is not None:
    eval_fpo = cost.eval_fpo
    info |= {"train_steps": cost.train_steps, "eval_steps": cost.eval_steps,
             "eval_examples": cost.eval_examples, "exact": cost.exact,
             "wall_s": cost.wall_s if cost.wall_s is not None else wall_s,
             "device_kind": cost.device_kind, "device_count": cost.device_count,
             "energy_j": cost.energy_j, "energy_source": cost.energy_source,
             "error": cost.error}
  trial.set_user_attr("train_fpo", jt.train_fpo)
  trial.set_user_attr("train_examples", jt.train_examples)
  trial.set_user_attr("eval_fpo", eval_fpo)
  trial.set_user_attr("jaxgreen", info)


# -- reading a study ----------------------------------------------------------------


def _trials(study: Any) -> list[Any]:
  optuna = _optuna()
  if not isinstance(study, optuna.study.Study):
    raise TypeError(f"study={study!r} must be an optuna.Study (optuna.load_study(...) "
                    f"reads one from its storage)")
  return [t for t in study.get_trials(deepcopy=False) if t.state.name in _STATUS]


def _trial_cost(t: Any, experiment: str) -> tuple[TrialCost, str | None]:
  """One Optuna trial as a TrialCost, and why it is not exact (or None)."""
  a = t.user_attrs
  info = a.get("jaxgreen") or {}
  note = None
  if "train_fpo" not in a:
    note = (f"optuna-{t.number} ({t.state.name.lower()}) has no jaxgreen record: it was "
            f"not run through jaxgreen._src.account.optuna.objective, or is still running, or its "
            f"process died; its FPO is counted as 0")
  elif info.get("exact", True) is None:
    note = (f"optuna-{t.number}: exactness unknown (its ledger had not committed it when "
            f"it ended); the ledger's report says")
  elif not info.get("exact", True):
    note = f"optuna-{t.number}: not counted exactly (the ledger's report says why)"
  wall = info.get("wall_s")
  if wall is None and t.datetime_start is not None and t.datetime_complete is not None:
    wall = (t.datetime_complete - t.datetime_start).total_seconds()
  status = info.get("status", _STATUS[t.state.name])
  if status == "running" and t.state.name != "RUNNING":
    status = _STATUS[t.state.name]
  cost = TrialCost(
      id=info.get("trial") or f"optuna-{t.number}", experiment=experiment,
      name=f"optuna-{t.number}", hparams=dict(t.params), status=status,
      train_steps=int(info.get("train_steps", info.get("steps", 0))),
      train_examples=int(a.get("train_examples", 0)), train_fpo=int(a.get("train_fpo", 0)),
      eval_steps=int(info.get("eval_steps", 0)), eval_examples=int(info.get("eval_examples", 0)),
      eval_fpo=int(a.get("eval_fpo", 0)), wall_s=wall,
      device_kind=info.get("device_kind", "?"), device_count=int(info.get("device_count", 0)),
      exact=note is None, energy_j=info.get("energy_j"),
      energy_source=info.get("energy_source"), error=info.get("error"))
  return cost, note


def price_tag_from_study(study: Any, *, experiment: str | None = None,
                         joules_per_flop: float | None = None) -> PriceTag:
  """The price tag (Equation 1) of an Optuna study, read from its storage.

  Every trial that ran counts in H: completed, pruned (``stopped``), failed and
  running ones; enqueued trials that never ran do not. FPO and examples are the user
  attributes :func:`objective` stored; a trial without them counts 0 FPO and makes the
  tag inexact, with a note naming it.

  Args:
    study: an ``optuna.Study`` (e.g. ``optuna.load_study(study_name=..., storage=...)``).
    experiment: the name shown (default: the study's name).
    joules_per_flop: the energy estimate's J/FLOP (default: the chip table's).

  Example (``tests/account/test_optuna.py`` runs it)::

    study = optuna.load_study(study_name="mlp", storage="sqlite:///optuna.db")
    tag = price_tag_from_study(study)
    tag.h, tag.train_fpo              # every trial that ran; the exact FPO sum
    print(tag.table())
  """
  from jaxgreen._src.account.pricetag import check_joules_per_flop

  check_joules_per_flop(joules_per_flop)
  trials = _trials(study)
  name = experiment or study.study_name
  costs, notes = [], []
  for t in trials:
    cost, note = _trial_cost(t, name)
    costs.append(cost)
    if note:
      notes.append(note)
  return PriceTag(name, tuple(costs), joules_per_flop,
                  None if joules_per_flop is None else "given", tuple(notes))


def _objective_index(study: Any, objective: int) -> int:
  n = len(study.directions)
  if isinstance(objective, bool) or not isinstance(objective, int) or not 0 <= objective < n:
    raise ValueError(f"objective={objective!r}: the study has {n} objective(s); pass an "
                     f"index 0 .. {n - 1}")
  return objective


def _metric_name(study: Any, i: int) -> str:
  names = getattr(study, "metric_names", None)
  if names:
    return str(names[i])
  return "value" if len(study.directions) == 1 else f"value {i}"


def _maximize(study: Any, i: int) -> bool:
  return study.directions[i].name == "MAXIMIZE"


def _score(t: Any, i: int, maximize: bool) -> float | None:
  """A trial's score: its value (completed), else its best reported value (pruned)."""
  if t.state.name == "COMPLETE" and t.values is not None:
    v = float(t.values[i])
    return None if math.isnan(v) else v
  if t.state.name == "PRUNED" and t.intermediate_values:
    vs = [v for v in t.intermediate_values.values() if not math.isnan(v)]
    return (max(vs) if maximize else min(vs)) if vs else None
  return None


def budget_curve_from_study(study: Any, objective: int = 0, *,
                            n_max: int | None = None) -> list[dict[str, Any]]:
  """Expected best score vs budget (Dodge et al. 2019), in trials and in training FPO.

  The rows are those of :func:`jaxgreen.curves.budget_curve` (``n_trials, budget_fpo,
  expected, std, lower, upper, metric, mode``), so
  :func:`jaxgreen.curves.budget_figure` draws them. Each completed trial's score is its
  value of objective ``objective`` (the direction gives ``mode``), a pruned trial's its
  best reported intermediate value; failed trials are not scored, but every trial's FPO
  counts in the budget per trial (mean training FPO over all H trials).
  """
  from jaxgreen.curves import expected_max

  i = _objective_index(study, objective)
  maximize = _maximize(study, i)
  trials = _trials(study)
  scores = [s for t in trials if (s := _score(t, i, maximize)) is not None]
  if not scores:
    raise ValueError(f"no trial of study {study.study_name!r} has a value for objective "
                     f"{i}; run some trials first")
  tag = price_tag_from_study(study)
  per_trial = tag.train_fpo / tag.h
  sign = 1.0 if maximize else -1.0
  lo, hi = min(scores), max(scores)
  rows = []
  for n, m, var in expected_max([sign * s for s in scores], n_max):
    mean, std = sign * m, math.sqrt(var)
    rows.append({"n_trials": n, "budget_fpo": n * per_trial, "expected": mean, "std": std,
                 "lower": min(max(mean - std, lo), hi), "upper": max(min(mean + std, hi), lo),
                 "metric": _metric_name(study, i), "mode": "max" if maximize else "min"})
  return rows


def pareto_front(study: Any, objective: int = 0) -> list[dict[str, Any]]:
  """Rows ``number, train_fpo, value, pareto`` for every completed trial with a
  jaxgreen record, sorted by FPO; ``pareto`` marks the trials no other trial beats on
  both the objective (in its direction) and training FPO (lower is better)."""
  i = _objective_index(study, objective)
  maximize = _maximize(study, i)
  rows = [{"number": t.number, "train_fpo": int(t.user_attrs["train_fpo"]),
           "value": float(t.values[i])}
          for t in _trials(study) if t.state.name == "COMPLETE"
          and "train_fpo" in t.user_attrs and not math.isnan(float(t.values[i]))]
  rows.sort(key=lambda r: (r["train_fpo"], -r["value"] if maximize else r["value"]))
  best: float | None = None
  for r in rows:  # sorted by FPO: on the front iff strictly better than every cheaper one
    better = best is None or (r["value"] > best if maximize else r["value"] < best)
    r["pareto"] = better
    if better:
      best = r["value"]
  return rows


def pareto_figure(study: Any, objective: int = 0) -> Figure:
  """The objective against training FPO, every completed trial, the Pareto front drawn.

  A :class:`matplotlib.figure.Figure` made without pyplot (needs ``[plot]``).
  """
  rows = pareto_front(study, objective)
  if not rows:
    raise ValueError(f"study {study.study_name!r} has no completed trial with a jaxgreen "
                     f"record; run trials through jaxgreen._src.account.optuna.objective")
  try:
    from matplotlib.figure import Figure
  except ImportError as e:
    raise ImportError("pareto_figure needs matplotlib: pip install 'jaxgreen[plot]'") from e
  metric = _metric_name(study, objective)
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  ax.scatter([r["train_fpo"] for r in rows], [r["value"] for r in rows], alpha=0.5,
             label="trials")
  front = [r for r in rows if r["pareto"]]
  ax.step([r["train_fpo"] for r in front], [r["value"] for r in front], where="post",
          marker="o", color="C3", label="Pareto front")
  for r in front:
    ax.annotate(str(r["number"]), (r["train_fpo"], r["value"]), fontsize="small",
                textcoords="offset points", xytext=(4, 4))
  ax.set_xlabel("training FPO (per trial)")
  ax.set_ylabel(metric)
  ax.set_title(f"{metric} vs training FPO: {study.study_name}")
  ax.legend(fontsize="small")
  fig.tight_layout()
  return fig


def plot(study: Any, out_dir: str | os.PathLike, objective: int = 0, *,
         png: bool = True) -> list[Path]:
  """Writes ``budget_curve.csv`` and ``pareto.csv`` and, with matplotlib, their PNGs.

  Returns:
    The paths written; the CSVs first, so they exist even without matplotlib.
  """
  from jaxgreen.curves import budget_figure, write_csv

  out = Path(out_dir)
  budget = budget_curve_from_study(study, objective)
  front = pareto_front(study, objective)
  paths = [write_csv(budget, out / "budget_curve.csv"), write_csv(front, out / "pareto.csv")]
  if png:
    paths.append(out / "budget_curve.png")
    budget_figure(budget).savefig(paths[-1], dpi=120)
    paths.append(out / "pareto.png")
    pareto_figure(study, objective).savefig(paths[-1], dpi=120)
  return paths
