"""The report where it lands: a model card, a paper appendix, the NeurIPS checklist's
compute answer, and the training compute against the EU AI Act's thresholds.

:func:`report` reads an experiment from a ledger (every trial: completed, stopped,
failed, preempted, crashed, and resumed ones once) and :class:`Report` writes:

* :meth:`Report.model_card`: a Hugging Face model card section, with the Hub's
  ``co2_eq_emissions`` metadata (grams of CO2e, source, training type, location,
  hardware) in its YAML front matter when CO2e is known, and the text: FPO, E, D, H
  with failed and stopped trials, energy and CO2e with their sources;
* :meth:`Report.latex` and :meth:`Report.markdown`: a paper appendix, with Show Your
  Work's items (Dodge et al. 2019): the number of trials, the budget, and the expected
  best validation score vs budget with its spread (:func:`jaxgreen.curves.budget_curve`);
* :meth:`Report.neurips`: the answer to the NeurIPS paper checklist's question on
  compute resources (type of compute, memory not recorded, time of execution, the
  total compute including failed and preliminary runs);
* :meth:`Report.thresholds`: the cumulative training compute against the EU AI Act's
  thresholds: 10^23 FLOP, the Commission's indicative criterion for a general-purpose
  model (guidelines on GPAI models, 2025), and 10^25 FLOP, the presumption of
  systemic risk (Regulation (EU) 2024/1689, Article 51(2)).

FPO and FLOP: FPO counts every ADD and every MUL (Green AI's measure); a fused
multiply-add is one MUL and one ADD, i.e. 2 FPO = 2 FLOP in the convention FLOP
thresholds and peak FLOP/s use. So FPO compares with those thresholds as it is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from jaxgreen._src.account.pricetag import PriceTag
from jaxgreen._src.report import human, markdown_table

#: EU AI Act thresholds on cumulative training compute, FLOP.
GPAI_FLOP = 1e23  # Commission guidelines on GPAI models (2025): indicative criterion
SYSTEMIC_RISK_FLOP = 1e25  # Regulation (EU) 2024/1689, Article 51(2): presumption
FPO_IS_FLOP = ("FPO counts ADDs and MULs separately: a fused multiply-add is 2 FPO = 2 FLOP, "
               "so FPO compares with FLOP thresholds as it is")
TRAINING_TYPES = ("pre-training", "fine-tuning")


@dataclasses.dataclass(frozen=True)
class Report:
  """What one experiment cost, ready for a model card, a paper and a checklist.

  Attributes:
    tag: the experiment's :class:`~jaxgreen._src.account.pricetag.PriceTag`.
    budget: Show Your Work's rows (``n_trials, budget_fpo, expected, std, lower,
      upper, metric, mode``), or () when no validation metric was logged.
    budget_note: why there is no budget curve, when there is none.
    training_type: ``"pre-training"`` or ``"fine-tuning"`` (the Hub's field).
  """

  tag: PriceTag
  budget: tuple[Mapping[str, Any], ...] = ()
  budget_note: str = ""
  training_type: str = "pre-training"

  # -- figures -----------------------------------------------------------------------

  def co2e(self) -> tuple[float | None, str]:
    return self.tag.co2e()

  def region(self) -> str:
    regions = sorted({t.carbon.region for t in self.tag.trials
                      if t.carbon is not None and t.carbon.region})
    return ", ".join(regions) or "unavailable"

  def statuses(self) -> str:
    return self.tag.statuses() or "none"

  def _rows(self) -> list[list[str]]:
    t = self.tag
    joules, energy = t.energy()
    grams, co2e = t.co2e()
    return [
        ["Trials H (every status)", f"{t.h} ({self.statuses()})"],
        ["Training examples per trial D (mean)", "-" if t.d is None else f"{t.d:,.1f}"],
        ["Training FPO per example E", "-" if t.e is None else f"{t.e:,.4g}"],
        ["Training FPO, E x D x H (all trials)", f"{t.train_fpo:,} ({human(t.train_fpo)})"],
        ["Evaluation FPO (apart)", f"{t.eval_fpo:,}"],
        ["Counts exact", "yes" if t.exact else "no: " + "; ".join(t.inexact_notes)],
        ["Wall-clock (sum over trials)", f"{t.wall_s / 3600:.4g} h"],
        ["Hardware", t.devices()],
        ["Energy", energy if joules is None else f"{joules / 3.6e6:.4g} kWh ({energy})"],
        ["CO2e", co2e if grams is None else f"{grams / 1000:.4g} kg ({co2e})"],
    ]

  # -- Hugging Face model card -------------------------------------------------------

  def model_card(self) -> str:
    """A model card section: YAML front matter (the Hub's ``co2_eq_emissions``, when
    CO2e is known) and Markdown text."""
    grams, label = self.co2e()
    front = ["---"]
    if grams is not None:
      front += ["co2_eq_emissions:", f"  emissions: {grams:.6g}",
                f"  source: {_yaml_str('jaxgreen: ' + label)}",
                f"  training_type: {self.training_type}",
                f"  geographical_location: {_yaml_str(self.region())}",
                f"  hardware_used: {_yaml_str(self.tag.devices())}"]
    else:
      front += ["tags:", "- jaxgreen"]
    front.append("---")
    body = ["", "## Training cost (Green AI price tag)", "",
            markdown_table(["", "value"], self._rows(), "ll"), "",
            f"Every trial of the experiment is counted: {self.statuses()}. "
            f"{FPO_IS_FLOP}.", "", self.thresholds()]
    if grams is None:
      body += ["", f"CO2e is not given in the metadata: {label}."]
    return "\n".join(front + body) + "\n"

  # -- paper appendix -----------------------------------------------------------------

  def markdown(self) -> str:
    """The paper appendix in Markdown: the price tag and Show Your Work's items."""
    out = ["## Compute and energy", "", markdown_table(["", "value"], self._rows(), "ll"),
           "", "## Expected best validation score vs budget (Dodge et al. 2019)", ""]
    if self.budget:
      out.append(markdown_table(*_budget_table(self.budget), "rrrr"))
    else:
      out.append(self.budget_note)
    return "\n".join(out + ["", self.thresholds()]) + "\n"

  def latex(self) -> str:
    """The paper appendix as LaTeX tables (``tabular``; no package beyond LaTeX's own)."""
    out = [r"\begin{table}[h]", r"\centering", r"\begin{tabular}{ll}", r"\hline",
           r"\multicolumn{2}{l}{Compute and energy (jaxgreen)} \\", r"\hline"]
    out += [f"{_tex(a)} & {_tex(b)} \\\\" for a, b in self._rows()]
    out += [r"\hline", r"\end{tabular}", r"\caption{Training cost: Green AI's price tag, "
            r"every trial counted.}", r"\end{table}"]
    if self.budget:
      headers, rows = _budget_table(self.budget)
      out += [r"\begin{table}[h]", r"\centering", r"\begin{tabular}{rrrr}", r"\hline",
              " & ".join(_tex(h) for h in headers) + r" \\", r"\hline"]
      out += [" & ".join(_tex(c) for c in r) + r" \\" for r in rows]
      out += [r"\hline", r"\end{tabular}",
              r"\caption{Expected best validation score vs budget, $\pm$ one standard "
              r"deviation (Dodge et al. 2019).}", r"\end{table}"]
    else:
      out.append(_tex(self.budget_note))
    out += ["", _tex(self.thresholds())]
    return "\n".join(out) + "\n"

  def latex_document(self) -> str:
    """:meth:`latex` in a minimal ``article``, ready for ``pdflatex``."""
    return ("\\documentclass{article}\n\\begin{document}\n" + self.latex()
            + "\\end{document}\n")

  # -- NeurIPS checklist, EU AI Act --------------------------------------------------

  def neurips(self) -> str:
    """The NeurIPS checklist's compute answer (type of compute workers, memory, time of
    execution, total compute including failed and preliminary runs)."""
    t = self.tag
    joules, energy = t.energy()
    grams, co2e = t.co2e()
    return (
        f"Compute resources. Answer: [Yes]. Justification: the experiment ran {t.h} "
        f"trials ({self.statuses()}) on {t.devices()}, {t.wall_s / 3600:.4g} hours of "
        f"wall-clock in total (summed over trials; memory per device was not recorded). "
        f"Total training compute, failed and stopped trials included: {t.train_fpo:,} FPO "
        f"({human(t.train_fpo)}; {FPO_IS_FLOP}), plus {t.eval_fpo:,} FPO of evaluation. "
        f"Energy: {energy if joules is None else f'{joules / 3.6e6:.4g} kWh ({energy})'}. "
        f"CO2e: {co2e if grams is None else f'{grams / 1000:.4g} kg ({co2e})'}. "
        f"Counted by jaxgreen from the programs run.")

  def threshold_figures(self) -> dict[str, Any]:
    fpo = self.tag.train_fpo
    return {"training_fpo": fpo, "gpai_flop": GPAI_FLOP,
            "gpai_share": fpo / GPAI_FLOP, "systemic_risk_flop": SYSTEMIC_RISK_FLOP,
            "systemic_risk_share": fpo / SYSTEMIC_RISK_FLOP,
            "above_gpai": fpo > GPAI_FLOP, "above_systemic_risk": fpo > SYSTEMIC_RISK_FLOP,
            "fpo_is_flop": FPO_IS_FLOP}

  def thresholds(self) -> str:
    """The cumulative training compute against the EU AI Act's thresholds."""
    f = self.threshold_figures()
    fpo = f["training_fpo"]

    def side(share: float, above: bool) -> str:
      return ("above" if above else "below") + f" ({_pow10(share)} of it)"

    return (f"EU AI Act: cumulative training compute of this experiment, all "
            f"{self.tag.h} trials ({self.statuses()}; resumed trials counted once, with "
            f"every segment) = {fpo:,} FPO = {_sci(fpo)} FLOP; "
            f"{side(f['gpai_share'], f['above_gpai'])} the 10^23 FLOP indicative criterion "
            f"for general-purpose models (Commission guidelines, 2025) and "
            f"{side(f['systemic_risk_share'], f['above_systemic_risk'])} the 10^25 FLOP "
            f"presumption of systemic risk (Regulation (EU) 2024/1689, Art. 51(2)). "
            f"{FPO_IS_FLOP}. A model's cumulative compute also includes other experiments "
            f"that trained it (pre-training of a fine-tuned model, synthetic data).")

  def to_dict(self) -> dict[str, Any]:
    grams, label = self.co2e()
    return {"price_tag": self.tag.to_dict(), "co2e_g": grams, "co2e_label": label,
            "budget": [dict(r) for r in self.budget], "budget_note": self.budget_note,
            "thresholds": self.threshold_figures(), "neurips": self.neurips()}


def _budget_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
  metric = rows[0]["metric"]
  headers = ["trials n", "budget (FPO)", f"expected best {metric}", "std"]
  return headers, [[str(r["n_trials"]), f"{r['budget_fpo']:.4g}", f"{r['expected']:.4g}",
                    f"{r['std']:.3g}"] for r in rows]


def _sci(x: float) -> str:
  if x <= 0:
    return "0"
  e = math.floor(math.log10(x))
  return f"{x / 10**e:.3g}e{e}"


def _pow10(share: float) -> str:
  return "0" if share <= 0 else f"{_sci(share)}"


def _yaml_str(s: str) -> str:
  return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}", "·": r"$\cdot$", "∝": r"$\propto$", "×": r"$\times$",
        "≤": r"$\leq$", "≥": r"$\geq$", "—": "---", "–": "--", "…": "...", "\u2009": " "}


def _tex(s: str) -> str:
  """Text for LaTeX: its special characters escaped; other non-ASCII characters (as
  in place names) in LaTeX's accents where common, else dropped with a '?'."""
  out = []
  for ch in str(s):
    if ch in _TEX:
      out.append(_TEX[ch])
    elif ord(ch) < 128:
      out.append(ch)
    else:
      out.append(_ACCENTS.get(ch, "?"))
  return "".join(out)


_ACCENTS = {"é": r"\'e", "è": r"\`e", "ü": r"\"u", "ö": r"\"o", "ä": r"\"a", "ã": r"\~a",
            "á": r"\'a", "í": r"\'i", "ó": r"\'o", "ç": r"\c{c}", "ñ": r"\~n", "ā": r"\=a"}


def report(ledger: Any, experiment: str | None = None, *, metric: str | None = None,
           mode: str = "max", training_type: str = "pre-training",
           joules_per_flop: float | None = None) -> Report:
  """The :class:`Report` of one experiment of a ledger.

  Args:
    ledger: a :class:`~jaxgreen._src.account.ledger.Ledger` or a path/URL to open read-only.
    experiment: its name (needed when the ledger holds several).
    metric: the validation metric for Show Your Work's curve (default: the only one
      logged; none logged: no curve, and the report says so).
    mode: ``"max"`` for accuracy-like metrics, ``"min"`` for losses.
    training_type: ``"pre-training"`` or ``"fine-tuning"``.
    joules_per_flop: the energy estimate's J/FLOP where energy was not measured.
  """
  from jaxgreen._src.account.ledger import Ledger

  if training_type not in TRAINING_TYPES:
    raise ValueError(f"report(training_type={training_type!r}): use one of "
                     f"{', '.join(TRAINING_TYPES)}")
  if not isinstance(ledger, Ledger):
    with Ledger(ledger, readonly=True) as led:
      return report(led, experiment, metric=metric, mode=mode, training_type=training_type,
                    joules_per_flop=joules_per_flop)
  if experiment is None:
    names = ledger.experiments()
    if len(names) != 1:
      raise ValueError(f"report(experiment=None): the ledger holds experiments {names}; "
                       f"name one")
    experiment = names[0]
  tag = ledger.price_tag(experiment, joules_per_flop=joules_per_flop)
  budget: tuple[Mapping[str, Any], ...] = ()
  note = ""
  try:
    from jaxgreen import curves

    budget = tuple(curves.budget_curve(ledger, metric, mode=mode, experiment=experiment))
  except ValueError as e:
    note = f"Expected best validation score vs budget: unavailable ({e})."
  return Report(tag, budget, note, training_type)
