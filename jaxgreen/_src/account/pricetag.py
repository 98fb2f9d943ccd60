"""The price tag: Equation 1 of Green AI, Cost(R) ∝ E · D · H, and its rendering.

A :class:`PriceTag` holds the cost of a set of trials (one :class:`TrialCost` each) as
read from a ledger (:meth:`jaxgreen.Ledger.price_tag`), and renders it as a terminal
table, Markdown or JSON. It is plain data: nothing here reads or writes a file.

Example:
  >>> trial = TrialCost(id="t1", experiment="demo", name="lr=0.1", hparams={"lr": 0.1},
  ...                   status="completed", train_steps=10, train_examples=640,
  ...                   train_fpo=6_400_000, eval_steps=0, eval_examples=0, eval_fpo=0,
  ...                   wall_s=2.0, device_kind="cpu", device_count=1, exact=True,
  ...                   energy_j=None, energy_source=None)
  >>> tag = PriceTag("demo", (trial,))
  >>> tag.e, tag.d, tag.h
  (10000.0, 640.0, 1)
  >>> tag.to_dict()["fpo"]
  6400000
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

from jaxgreen._src.account.carbon import Carbon
from jaxgreen._src.account.energy import trial_energy
from jaxgreen._src.account.schema import CRASH_TIMEOUT_S, STATUSES
from jaxgreen._src.report import human, markdown_table, table

# As reported: a 'running' trial whose process is gone is reported as 'crashed'.
REPORTED_STATUSES = (*STATUSES, "crashed")


@dataclasses.dataclass(frozen=True)
class TrialCost:
  """The cost of one trial. FPO totals are exact integers."""

  id: str
  experiment: str
  name: str
  hparams: Mapping[str, Any]
  status: str
  train_steps: int
  train_examples: int
  train_fpo: int
  eval_steps: int
  eval_examples: int
  eval_fpo: int
  wall_s: float | None
  device_kind: str
  device_count: int
  exact: bool
  energy_j: float | None
  energy_source: str | None
  error: str | None = None  # why it failed, stopped or was preempted (exception, reason)
  run_id: str | None = None
  # Measured by the process that ran the trial (Experiment.price_tag); not in the ledger.
  fpo_per_s_per_device: float | None = None
  mfu: float | None = None  # PaLM's model FLOPs utilisation (no rematerialisation)
  mfu_reference: str | None = None  # the peak MFU is measured against, or why none
  hfu: float | None = None  # PaLM's hardware FLOPs utilisation (the program as run)
  model_fpo_known: bool = True  # False: the model FPO was not recorded, MFU = HFU
  # Where the trial drew its energy (schema 4), or None when not recorded.
  carbon: Carbon | None = None

  @property
  def fpo(self) -> int:
    return self.train_fpo + self.eval_fpo

  @property
  def e_train(self) -> float | None:
    """E: training FPO per training example."""
    return self.train_fpo / self.train_examples if self.train_examples else None

  @property
  def e_eval(self) -> float | None:
    """E at inference: evaluation FPO per evaluated example."""
    return self.eval_fpo / self.eval_examples if self.eval_examples else None

  def co2e(self, jpf: float | None = None) -> tuple[float | None, str]:
    """(grams CO2e, label): energy × intensity × PUE; None with the reason when the
    energy or the region's intensity is unknown."""
    joules, energy = trial_energy(self, jpf)
    carbon = self.carbon or Carbon(region_source="unavailable: no region recorded")
    grams = carbon.co2e_g(joules)
    if grams is None:
      why = energy if joules is None else carbon.label()
      return None, why if why.startswith("unavailable") else f"unavailable: {why}"
    return grams, f"{energy.split(',')[0]} energy x {carbon.label()}"

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["hparams"] = dict(self.hparams)
    grams, label = self.co2e()
    return d | {"fpo": self.fpo, "e_train": self.e_train, "e_eval": self.e_eval,
                "co2e_g": grams, "co2e_label": label}


@dataclasses.dataclass(frozen=True)
class PriceTag:
  """Equation 1 of Green AI, Cost(R) ∝ E · D · H, for a set of trials.

  ``E`` is training FPO per example over all trials (Σ train FPO / Σ D), ``D`` the
  mean number of training examples per trial, ``H`` the number of trials (completed,
  stopped early and failed alike: all were paid for). ``E · D · H`` equals the total
  training FPO exactly (up to float rounding of E and D); evaluation (inference) work
  is reported apart. Energy is a separate figure, never added to FPO.
  """

  experiment: str | None
  trials: tuple[TrialCost, ...]
  joules_per_flop: float | None = None
  joules_per_flop_source: str | None = None
  inexact_notes: tuple[str, ...] = ()  # why counts are not exact, per signature
  runs: tuple[tuple[str, float | None], ...] = ()  # (run id, start time) in start order
  no_examples: tuple[str, ...] = ()  # train functions whose steps recorded 0 examples

  @property
  def h(self) -> int:
    return len(self.trials)

  @property
  def train_fpo(self) -> int:
    return sum(t.train_fpo for t in self.trials)

  @property
  def eval_fpo(self) -> int:
    return sum(t.eval_fpo for t in self.trials)

  @property
  def fpo(self) -> int:
    return self.train_fpo + self.eval_fpo

  @property
  def train_examples(self) -> int:
    return sum(t.train_examples for t in self.trials)

  @property
  def eval_examples(self) -> int:
    return sum(t.eval_examples for t in self.trials)

  @property
  def e(self) -> float | None:
    return self.train_fpo / self.train_examples if self.train_examples else None

  @property
  def e_eval(self) -> float | None:
    return self.eval_fpo / self.eval_examples if self.eval_examples else None

  @property
  def d(self) -> float | None:
    return self.train_examples / self.h if self.h else None

  @property
  def wall_s(self) -> float:
    return sum(t.wall_s or 0.0 for t in self.trials)

  @property
  def exact(self) -> bool:
    return all(t.exact for t in self.trials)

  def warnings(self) -> list[str]:
    """What the figures may hide: train steps that recorded no examples (D = 0)."""
    if not self.no_examples:
      return []
    return [f"D = 0 for the train step(s) {', '.join(self.no_examples)}: their FPO is "
            f"counted but no examples, so E and D are off; give track(examples=N), or "
            f"track(examples='name of the batch argument')"]

  def devices(self) -> str:
    kinds = sorted({f"{t.device_count} x {t.device_kind}" for t in self.trials})
    return ", ".join(kinds) or "-"

  def energy(self) -> tuple[float | None, str]:
    """(joules, label): measured where every trial was measured, else an estimate."""
    total, measured, estimates = 0.0, [], []
    for t in self.trials:
      j, label = trial_energy(t, self.joules_per_flop)
      if j is None:
        return None, label
      total += j
      if label.startswith("measured"):
        measured.append((t.energy_source or "NVML").split(",")[0])
      else:
        estimates.append(label)
    if not self.trials:
      return None, "unavailable: no trials"
    meters = "/".join(sorted(set(measured)))  # NVML, RAPL
    if not estimates:
      return total, f"measured ({meters})"
    if not measured:
      return total, estimates[0] if len(set(estimates)) == 1 else "estimate, mixed chips"
    return total, (f"mixed: {len(measured)} trial(s) measured ({meters}), {len(estimates)} "
                   f"estimate(s)")

  def co2e(self) -> tuple[float | None, str]:
    """(grams CO2e, label) of all trials: Σ energy × intensity × PUE per trial; None
    with the reason when one trial's energy or region is unknown (never a guess)."""
    if not self.trials:
      return None, "unavailable: no trials"
    total, labels = 0.0, []
    for t in self.trials:
      grams, label = t.co2e(self.joules_per_flop)
      if grams is None:
        return None, label if self.h == 1 else f"{label} (trial {t.name})"
      total += grams
      labels.append(label)
    return total, labels[0] if len(set(labels)) == 1 else (
        f"per trial, {len(set(labels))} different sources: " + "; ".join(sorted(set(labels))))

  def to_dict(self) -> dict[str, Any]:
    joules, label = self.energy()
    grams, co2e_label = self.co2e()
    return {
        "experiment": self.experiment,
        "H_trials": self.h,
        "D_examples_per_trial": self.d,
        "E_train_fpo_per_example": self.e,
        "train_fpo": self.train_fpo,
        "train_examples": self.train_examples,
        "eval_fpo": self.eval_fpo,
        "eval_examples": self.eval_examples,
        "E_eval_fpo_per_example": self.e_eval,
        "fpo": self.fpo,
        "exact": self.exact,
        "inexact_notes": list(self.inexact_notes),
        "runs": [{"id": r, "started": t} for r, t in self.runs],
        "warnings": self.warnings(),
        "wall_s": self.wall_s,
        "devices": self.devices(),
        "energy_j": joules,
        "energy_label": label,
        "co2e_g": grams,
        "co2e_label": co2e_label,
        "trials": [t.to_dict() for t in self.trials],
    }

  def to_json(self, **kw) -> str:
    return json.dumps(self.to_dict(), **kw)

  def table(self) -> str:
    """A plain-text report for a terminal."""
    return self._render(markdown=False)

  def markdown(self) -> str:
    return self._render(markdown=True)

  def __repr__(self) -> str:
    return (f"PriceTag(experiment={self.experiment!r}, H={self.h}, D={_e(self.d)}, "
            f"E={_e(self.e)}, train_fpo={self.train_fpo:,}, eval_fpo={self.eval_fpo:,}, "
            f"exact={self.exact})")

  def _repr_pretty_(self, p: Any, cycle: bool) -> None:
    p.text(repr(self) if cycle else self.table())

  def _repr_html_(self) -> str:
    """The notebook view: the same tables and notes as :meth:`table`."""
    return self._render(markdown=False, html=True)

  def to_pandas(self) -> Any:
    """One row per trial: the fields of :class:`TrialCost` with ``fpo``, ``e_train``
    and ``e_eval`` (needs pandas: ``pip install 'jaxgreen[pandas]'``)."""
    from jaxgreen._src.report import data_frame

    return data_frame([t.to_dict() for t in self.trials], "PriceTag.to_pandas")

  def _render(self, markdown: bool, html: bool = False) -> str:
    from jaxgreen._src import _html

    render = _html.table if html else markdown_table if markdown else table
    title = self.experiment or "all experiments"
    out = [f"## Price tag: {title}" if markdown else f"Price tag: {title}", ""]
    headers, rows, timed = self._trial_rows()
    out.append(render(headers, rows, "ll" + "r" * (len(headers) - 2)))
    out.append("D: examples; E: FPO per example")
    if timed:
      out.append(_throughput_note(self.trials))
    out.append("")
    e, d, h = self.e, self.d, self.h
    eq = "-"
    if e is not None and d is not None:
      # E x D x H is the train FPO exactly; a factor shown rounded says so.
      rounded = [n for n, x in (("E", e), ("D", d)) if round(x, 1) != x]
      eq = (f"{_e(e)} x {_e(d)} x {h} = {self.train_fpo:,}"
            + (f" ({' and '.join(rounded)} rounded to 0.1)" if rounded else ""))
    spread = ""
    es = [t.e_train for t in self.trials if t.e_train is not None]
    if es and max(es) != min(es):
      spread = f" (per trial {human(min(es))} .. {human(max(es))})"
    joules, label = self.energy()
    totals = [
        ["E: train FPO per example", _e(e) + spread],
        ["D: train examples per trial (mean)", _e(d)],
        ["H: trials (every status)", f"{h} ({self.statuses()})"],
        ["E x D x H", eq],
        ["train FPO (sum over trials, steps)", f"{self.train_fpo:,} ({human(self.train_fpo)})"],
        ["eval FPO (inference, apart)",
         f"{self.eval_fpo:,} ({human(self.eval_fpo)}; E eval {_e(self.e_eval)})"],
        ["total FPO", f"{self.fpo:,} ({human(self.fpo)})"],
        ["exact", "yes" if self.exact else "NO (why: below)"],
        ["wall-clock (sum over trials)", _s(self.wall_s)],
        ["devices", self.devices()],
        ["energy (not FPO)", label if joules is None else f"{joules:.3g} J ({label})"],
        ["CO2e = kWh x gCO2e/kWh x PUE", _co2e_text(*self.co2e())],
    ]
    if len(self.runs) > 1:
      first, last = self.runs[0], self.runs[-1]
      totals.append(["runs (script executions)",
                     f"{len(self.runs)}: {first[0][:8]} ({_date(first[1])}) .. {last[0][:8]} "
                     f"({_date(last[1])}); one run: --run latest"])
    out.append(render(["Equation 1: Cost(R) ∝ E · D · H", "value"], totals, "ll"))
    notes = [f"{t.name} ({t.status}): {t.error}" for t in self.trials if t.error]
    if notes:
      out += ["", "Why trials failed or stopped:"] + [f"  {n}" for n in notes]
    if not self.exact:
      out += ["", "Why counts are not exact:"] + [
          f"  {n}" for n in self.inexact_notes or ("a signature was not counted exactly",)]
    warns = self.warnings()
    if warns:
      out += [""] + [f"WARNING: {w}" for w in warns]
    if html:
      return _html.fragment(*(x if isinstance(x, _html.Html) else
                              _html.Html(f"<div>{_html.esc(x)}</div>") for x in out[2:] if x),
                            title=out[0])
    return "\n".join(out)

  def _trial_rows(self) -> tuple[list[str], list[list[str]], bool]:
    """Headers and one row per trial; FPO/s and MFU columns only where measured."""
    rows = []
    for t in self.trials:
      rows.append([t.name, t.status, f"{t.train_steps:,}", f"{t.train_examples:,}",
                   _e(t.e_train), f"{t.train_fpo:,}", f"{t.eval_examples:,}", _e(t.e_eval),
                   f"{t.eval_fpo:,}", _s(t.wall_s)])
    headers = ["trial", "status", "steps", "D", "E train", "train FPO", "D eval", "E eval",
               "eval FPO", "wall"]
    timed = any(t.fpo_per_s_per_device is not None for t in self.trials)
    if timed:  # measured while the trials ran, stored in the ledger
      headers += ["FPO/s/device", "MFU", "HFU"]
      for r, t in zip(rows, self.trials, strict=True):
        r += ["-" if t.fpo_per_s_per_device is None else human(t.fpo_per_s_per_device),
              "-" if t.mfu is None else f"{100 * t.mfu:.3g} %"
              + ("" if t.model_fpo_known else " (= HFU: model FPO not recorded)"),
              "-" if t.hfu is None else f"{100 * t.hfu:.3g} %"]
    return headers, rows, timed

  def statuses(self) -> str:
    """The count of trials by status, e.g. ``"3 completed, 1 failed"``."""
    counts = {s: sum(t.status == s for t in self.trials) for s in REPORTED_STATUSES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def _throughput_note(trials: Sequence[TrialCost]) -> str:
  """What the FPO/s and MFU columns measure, and against which peak."""
  refs = sorted({t.mfu_reference for t in trials if t.mfu_reference})
  return ("FPO/s/device: exact FPO of the timed steps (first call of each signature "
          "excluded) / their wall time / devices per step; HFU: that / the peak ("
          + ("; ".join(refs) or "none") + "); MFU: the same for the model FPO, the steps "
          "as if nothing were rematerialised (PaLM, Chowdhery et al. 2022, appendix B)")


def _co2e_text(grams: float | None, label: str) -> str:
  if grams is None:
    return label
  return f"{grams / 1000:.4g} kg ({label})" if grams >= 1000 else f"{grams:.4g} g ({label})"


def _date(t: float | None) -> str:
  return "?" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _e(x: float | None) -> str:
  """A mean (E, D): an integer as one, else to 0.1."""
  if x is None:
    return "-"
  return f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"


def _s(x: float | None) -> str:
  return "-" if x is None else f"{x:,.2f} s"


def _process_gone(host: str | None, pid: int | None, started: float | None) -> bool:
  """True when the process that wrote a run is known to be gone: it ran on this host
  and its pid is free, or was reused by a process started after the run. A run of
  another host cannot be checked from here (False)."""
  if not host or not pid or host != socket.gethostname() or pid == os.getpid():
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except (PermissionError, OSError):
    pass
  try:  # Linux: when did the process now holding this pid start?
    with open(f"/proc/{pid}/stat") as f:
      ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
      boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    return started is not None and boot + ticks / os.sysconf("SC_CLK_TCK") > started + 2
  except (OSError, ValueError, IndexError, StopIteration):
    return False




def reported_status(trial: Mapping[str, Any], now: float) -> str:
  """The status a report shows: a ``running`` trial is ``crashed`` when its process is
  known to be gone (same host: its pid), or, on another host, when its last write
  (``heartbeat``) is older than its ``stale_after`` seconds (clocks of the hosts are
  assumed to agree within that). A trial with no heartbeat (written by a jaxgreen
  before schema 2) on another host cannot be judged and stays ``running``."""
  if trial["status"] != "running":
    return trial["status"]
  host = trial.get("run_host")
  if _process_gone(host, trial.get("run_pid"), trial.get("run_started")):
    return "crashed"
  if host and host == socket.gethostname():
    return "running"  # this host: the pid says it is alive
  beat = trial.get("heartbeat")
  stale = trial.get("stale_after") or CRASH_TIMEOUT_S
  return "crashed" if beat is not None and now - beat > stale else "running"


def check_joules_per_flop(joules_per_flop: float | None) -> None:
  """Rejects anything but None or a number > 0."""
  if joules_per_flop is not None and (
      isinstance(joules_per_flop, bool) or not isinstance(joules_per_flop, int | float)
      or not joules_per_flop > 0):
    raise ValueError(f"joules_per_flop={joules_per_flop!r} must be a number > 0 "
                     f"(e.g. 7.1e-13), or None to use the chip table")


def build(experiment: str | None, trials: Sequence[Mapping[str, Any]],
          steps: Sequence[Mapping[str, Any]], inexact: Sequence[Mapping[str, Any]],
          no_examples: Sequence[str], runs: Sequence[tuple[str, float | None]],
          joules_per_flop: float | None = None) -> PriceTag:
  """The price tag of ledger rows (as read by :meth:`jaxgreen.Ledger.price_tag`).

  Args:
    experiment: its name, or None for all experiments.
    trials: trial rows joined with their run's ``device_kind, device_count``,
      ``run_host, run_pid, run_started``, in start order.
    steps: rows ``trial_id, kind, steps, examples, fpo, exact`` (one per step row).
    inexact: rows ``function, cost`` of the signatures not counted exactly.
    no_examples: train functions whose steps recorded 0 examples.
    runs: (run id, start time) of the runs holding the trials, in start order.
    joules_per_flop: the energy estimate's J/FLOP, or None for the chip table.
  """
  return PriceTag(experiment, _trial_costs(trials, steps), joules_per_flop,
                  None if joules_per_flop is None else "given", _inexact_notes(inexact),
                  tuple(runs), tuple(no_examples))


def _trial_costs(trials: Sequence[Mapping[str, Any]],
                 steps: Sequence[Mapping[str, Any]]) -> tuple[TrialCost, ...]:
  """FPO of a trial = Σ over its step rows of steps × FPO per call, in exact integers."""
  sums: dict[tuple[str, str], list[int]] = {}
  exact: dict[str, bool] = {}
  for r in steps:
    acc = sums.setdefault((r["trial_id"], r["kind"]), [0, 0, 0])
    acc[0] += r["steps"]
    acc[1] += r["examples"]
    acc[2] += r["steps"] * int(r["fpo"])
    exact[r["trial_id"]] = exact.get(r["trial_id"], True) and bool(r["exact"])
  out = []
  now = time.time()
  for t in trials:
    tr = sums.get((t["id"], "train"), [0, 0, 0])
    ev = sums.get((t["id"], "eval"), [0, 0, 0])
    done = t["ended"] is not None and t["started"] is not None
    wall = t["ended"] - t["started"] if done else None
    out.append(TrialCost(
        id=t["id"], experiment=t["experiment"], name=t["name"] or t["id"][:8],
        hparams=json.loads(t["hparams"] or "{}"),
        status=reported_status(t, now),
        train_steps=tr[0], train_examples=tr[1], train_fpo=tr[2],
        eval_steps=ev[0], eval_examples=ev[1], eval_fpo=ev[2], wall_s=wall,
        device_kind=t["device_kind"] or "?", device_count=t["device_count"] or 0,
        exact=exact.get(t["id"], True), energy_j=t["energy_j"],
        energy_source=t["energy_source"], error=t["error"], run_id=t["run_id"],
        carbon=Carbon.from_row(t)))
  return tuple(out)


def _inexact_notes(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
  """Why counts are not exact: one note per function and reason, in row order."""
  notes: list[str] = []
  for r in rows:
    try:
      cost = json.loads(r["cost"])
    except ValueError:
      cost = {}
    why = list(cost.get("inexact") or [])
    why += [f"no rule for {k} (x{v})" for k, v in (cost.get("uncounted") or {}).items()]
    for w in why or ["not exact"]:
      note = f"{r['function']}: {w}"
      if note not in notes:
        notes.append(note)
  return tuple(notes)
