"""The results of one program compiled for several targets: :class:`Comparison`.

Example:
  >>> Comparison(()).same_global_fpo  # no results: nothing disagrees
  True
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jaxgreen._src.comparison.modules import ModuleReport, module_report
from jaxgreen._src.comparison.render import json_default, plot_comparison, rows
from jaxgreen._src.pods import PodReport
from jaxgreen._src.report import markdown_table, number, table
from jaxgreen.chips import Roofline, mfu
from jaxgreen.targets import get_target

_INSTANCE = re.compile(r" \(instruction [^)]*\)| \([a-z][\w\-]*(?:\.\d+)*\)")


@dataclasses.dataclass(frozen=True)
class TargetResult:
  """One target of a comparison.

  Attributes:
    target: the target string.
    mesh_shape: axis name -> size of the mesh the inputs were sharded over.
    pod: the :class:`jaxgreen._src.pods.PodReport` (counts, collectives, memory).
    roofline: the per-device estimate (None for targets without chip figures, e.g. cpu).
    measured_step_s: a measured step time, if one was given (for MFU).
  """

  target: str
  mesh_shape: Mapping[str, int]
  pod: PodReport
  roofline: Roofline | None
  measured_step_s: float | None = None

  @property
  def global_fpo(self):
    return self.pod.logical.fpo

  @property
  def energy_j(self) -> float | None:
    """Estimated energy of one step on all devices: TDP x step time x devices."""
    if self.roofline is None or self.roofline.energy_j is None:
      return None
    return self.roofline.energy_j * self.pod.devices

  @property
  def fpo_per_joule(self) -> float | None:
    """Global FPO / estimated step energy (an estimate)."""
    e = self.energy_j
    return self.global_fpo / e if e else None

  @property
  def mfu(self) -> float | None:
    """Global FPO / (devices x peak x measured step time); None without a measurement."""
    if self.measured_step_s is None or self.roofline is None:
      return None
    return mfu(self.global_fpo / self.pod.devices, self.measured_step_s, self.roofline.chip,
               self.roofline.dtype)

  def __repr__(self) -> str:
    step = self.roofline.step_s if self.roofline else None
    return (f"TargetResult(target={self.target!r}, devices={self.pod.devices}, "
            f"global_fpo={number(self.global_fpo)}, "
            f"per_device_fpo={number(self.pod.per_device.fpo)}, step_s={step!r})")

  def _repr_html_(self) -> str:
    return Comparison((self,))._repr_html_()

  def _record(self) -> dict[str, Any]:
    """One flat row of numbers (a DataFrame's row)."""
    roof, pod = self.roofline, self.pod
    return {"target": self.target, "chip": roof.chip if roof else None,
            "devices": pod.devices, "global_fpo": self.global_fpo,
            "per_device_fpo": pod.per_device.fpo,
            "compiled_global_fpo": pod.compiled_global_fpo, "redundancy": pod.redundancy,
            "hbm_bytes": pod.hbm_bytes, "peak_bytes": pod.memory.peak_bytes,
            "collective_sent_bytes": pod.sent_bytes,
            "compute_s": roof.compute_s if roof else None,
            "memory_s": roof.memory_s if roof else None,
            "collective_s": roof.collective_s if roof else None,
            "step_s": roof.step_s if roof else None, "energy_j": self.energy_j,
            "fpo_per_joule": self.fpo_per_joule, "measured_step_s": self.measured_step_s,
            "mfu": self.mfu}

  def to_dict(self) -> dict[str, Any]:
    return {
        "target": self.target, "mesh": dict(self.mesh_shape), **self.pod.to_dict(),
        "roofline": self.roofline.to_dict() if self.roofline else None,
        "energy_j": self.energy_j, "energy_label": "estimate (TDP x estimated time)",
        "fpo_per_joule": self.fpo_per_joule, "measured_step_s": self.measured_step_s,
        "mfu": self.mfu,
    }


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Results of one program on several targets; index by target string.

  Attributes:
    results: one result per target that could be compiled.
    name: the report's title.
    unavailable: target string -> why it could not be compiled (and the fix).
    max_depth: the default depth of :meth:`modules`.
    by_module: whether module figures were collected (``compare(..., by_module=True)``);
      the reports then add the per-module table.
  """

  results: tuple[TargetResult, ...]
  name: str = ""
  unavailable: Mapping[str, str] = dataclasses.field(default_factory=dict)
  max_depth: int | None = None
  by_module: bool = False

  def modules(self, max_depth: int | None | str = "default") -> ModuleReport:
    """The per-module report: the same module rows for every target.

    Args:
      max_depth: aggregate module paths to this many segments; None: full paths;
        default: the ``max_depth`` given to :func:`jaxgreen.compare`.

    Raises:
      ValueError: if the comparison was made without ``by_module=True``.
    """
    if not self.by_module:
      raise ValueError("Comparison.modules(): compare without module figures; pass "
                       "by_module=True to jaxgreen.compare")
    depth = self.max_depth if max_depth == "default" else max_depth
    return module_report(self.results, depth if not isinstance(depth, str) else None,
                         self.name)

  def __getitem__(self, target: str) -> TargetResult:
    spec = get_target(target).spec
    for r in self.results:
      if r.target == spec:
        return r
    if spec in self.unavailable:
      raise KeyError(f"target {spec!r} is unavailable: {self.unavailable[spec]}")
    raise KeyError(f"no result for target {target!r}; have "
                   f"{', '.join(r.target for r in self.results)}")

  def __iter__(self):
    return iter(self.results)

  def __len__(self) -> int:
    return len(self.results)

  @property
  def same_global_fpo(self) -> bool:
    """True when every target counted the same global FPO (as it should)."""
    return len({r.global_fpo for r in self.results}) <= 1

  def rows(self) -> list[tuple[str, list[str]]]:
    """(label, one cell per target) for the tables; "unavailable" for targets that
    could not be compiled (their reasons are in :meth:`notes`)."""
    gone = ["unavailable"] * len(self.unavailable)
    return [(label, [*cells, *gone]) for label, cells in rows(self.results)]

  def _heads(self) -> list[str]:
    return ["", *(r.target for r in self.results), *self.unavailable]

  def table(self) -> str:
    """The side-by-side plain-text report: one column per target."""
    heads = self._heads()
    body = [[label, *cells] for label, cells in self.rows()]
    return "\n".join([table(heads, body), *self.notes()])

  def markdown(self) -> str:
    heads = self._heads()
    body = [[label.strip() or " ", *cells] for label, cells in self.rows()]
    notes = [f"- {n}" for n in self.notes()]
    return "\n".join([markdown_table(heads, body), "", *notes]).rstrip()

  def __repr__(self) -> str:
    fpo = number(self.results[0].global_fpo) if self.results else "-"
    return (f"Comparison(name={self.name!r}, targets={[r.target for r in self.results]}, "
            f"global_fpo={fpo}, unavailable={list(self.unavailable)}, "
            f"by_module={self.by_module})")

  def _repr_pretty_(self, p: Any, cycle: bool) -> None:
    p.text(repr(self) if cycle else "\n\n".join(([self.name] if self.name else [])
                                                 + [self.table()]))

  def _repr_html_(self) -> str:
    """The notebook view: the side-by-side table, notes, and the module tree (folded)
    when module figures were collected."""
    from jaxgreen._src import _html

    heads = self._heads()
    body = [[label, *cells] for label, cells in self.rows()]
    parts = [_html.table(heads, body), _html.notes(self.notes())]
    if self.by_module and self.results:
      parts.append(_html.section("by module", self.modules()._repr_html_(), open=False))
    return _html.fragment(*parts, title=self.name or "Comparison of targets")

  def to_pandas(self) -> Any:
    """One row per target: chip, devices, FPO (global, per device), redundancy, bytes,
    the roofline times, energy and MFU (needs pandas: ``pip install 'jaxgreen[pandas]'``).
    Per-module figures: ``modules().to_pandas()``."""
    from jaxgreen._src.report import data_frame

    return data_frame([r._record() for r in self.results], "Comparison.to_pandas")

  def notes(self) -> list[str]:
    out = ["Times and energies are roofline estimates from published chip figures "
           "(jaxgreen.chips), not measurements."]
    if any(isinstance(r.pod.per_device.fpo, float) and not r.pod.per_device.fpo.is_integer()
           for r in self.results):
      out.append("~: a per-device mean, rounded: an all-reduce's n-1 ADDs per element are "
                 "shared by its n devices; x devices is exact.")
    if not self.same_global_fpo:
      out.append("WARNING: the global FPO differs between targets: the jaxpr depends on "
                 "the target (e.g. a shard_map over a different mesh).")
    out += [f"{spec}: unavailable: {why}" for spec, why in self.unavailable.items()]
    for r in self.results:
      for n in (r.roofline.notes if r.roofline else ()):
        out.append(f"{r.target}: {n}")
      # One line per kind of caveat: instruction names would repeat it per instance.
      seen: dict[str, int] = {}
      for n in r.pod.notes:
        key = _INSTANCE.sub("", n)
        seen[key] = seen.get(key, 0) + 1
      out += [f"{r.target}: {k}" + (f" ({c} instructions)" if c > 1 else "")
              for k, c in seen.items()]
    return list(dict.fromkeys(out))

  def to_dict(self) -> dict[str, Any]:
    out = {"name": self.name, "same_global_fpo": self.same_global_fpo,
           "targets": [r.to_dict() for r in self.results],
           "unavailable": dict(self.unavailable), "notes": self.notes()}
    if self.by_module and self.results:
      out["by_module"] = self.modules().to_dict()
    return out

  def to_json(self, **kw) -> str:
    return json.dumps(self.to_dict(), default=json_default, **kw)

  def plot(self, path: str | None = None, metrics: Sequence[str] = ("step_s", "energy_j",
                                                                    "fpo_per_joule")):
    """A bar chart, one panel per metric, one bar per target (needs the ``[plot]`` extra).

    Args:
      path: where to save the figure (PNG, SVG, PDF by extension); None: only return it.
      metrics: keys of :data:`jaxgreen._src.comparison.render.PLOT_METRICS`.

    Returns:
      The matplotlib ``Figure``.
    """
    return plot_comparison(self, path, metrics)
