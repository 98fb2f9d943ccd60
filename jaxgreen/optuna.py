"""Optuna studies as jaxgreen experiments (the ``[optuna]`` extra).

``study.optimize(jaxgreen.optuna.objective(exp, fn), ...)`` records each Optuna trial as
a trial of ``exp``; the rest reads a finished study: its price tag, its budget curve, the
Pareto front of metric against FPO, and their figures.
"""

from jaxgreen._src.account.optuna import budget_curve_from_study as budget_curve_from_study
from jaxgreen._src.account.optuna import objective as objective
from jaxgreen._src.account.optuna import pareto_figure as pareto_figure
from jaxgreen._src.account.optuna import pareto_front as pareto_front
from jaxgreen._src.account.optuna import plot as plot
from jaxgreen._src.account.optuna import price_tag_from_study as price_tag_from_study

__all__ = ["budget_curve_from_study", "objective", "pareto_figure", "pareto_front", "plot",
           "price_tag_from_study"]
