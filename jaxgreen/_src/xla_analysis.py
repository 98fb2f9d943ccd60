"""XLA's own numbers for a compiled executable: its cost analysis, best effort.

``compiled.cost_analysis()`` differs by jax version and backend (None, a dict, or a list
of dicts), and deviceless GPU executables have none: :func:`xla_cost` reads whichever is
there into one :class:`XlaCost`, never raising.

Example:
  >>> normalize_cost_analysis([{"flops": 128, "bytes accessed": 1024, "name": "dot"}])
  {'flops': 128.0, 'bytes accessed': 1024.0}
  >>> xla_cost(None).available  # nothing to read: every figure unavailable
  False
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from jaxgreen._src.compile_cache import module_cost


@dataclasses.dataclass(frozen=True)
class XlaCost:
  """XLA's cost analysis of one compiled module (per device); None where unavailable.

  Attributes:
    flops: HloCostAnalysis flops (a multiply-add is 2; transcendentals excluded).
    transcendentals: transcendental evaluations.
    bytes_accessed: bytes read and written, fusion-aware.
    optimal_seconds: the compiler's time estimate (TPU only).
    source: ``"cost_analysis"``, ``"hlo_module_cost_analysis"`` or ``"unavailable"``.
  """

  flops: float | None = None
  transcendentals: float | None = None
  bytes_accessed: float | None = None
  optimal_seconds: float | None = None
  source: str = "unavailable"

  @property
  def available(self) -> bool:
    return self.flops is not None


def normalize_cost_analysis(ca: Any) -> dict[str, float] | None:
  """``compiled.cost_analysis()`` as one dict, or None.

  Depending on the jax version and backend it is None, a dict, or a list of dicts
  (one per HLO module; the first is the entry module). Values that are not numbers are
  dropped.
  """
  if isinstance(ca, Sequence) and not isinstance(ca, str | bytes):
    ca = next((x for x in ca if isinstance(x, Mapping)), None)
  if not isinstance(ca, Mapping):
    return None
  out = {}
  for k, v in ca.items():
    try:
      out[str(k)] = float(v)
    except (TypeError, ValueError):
      continue
  return out or None


def _get(d: Mapping[str, float], *keys: str) -> float | None:
  for k in keys:
    if k in d:
      v = d[k]
      return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
  return None


def xla_cost(compiled: Any) -> XlaCost:
  """XLA's cost analysis of ``compiled``, never raising.

  Uses ``compiled.cost_analysis()``; where that is None (deviceless GPU executables),
  runs XLA's plain HloCostAnalysis on the compiled module with the CPU client, which
  is what a GPU client reports too.
  """
  d, source = None, "unavailable"
  try:
    d = normalize_cost_analysis(compiled.cost_analysis())
    source = "cost_analysis" if d else source
  except Exception:  # noqa: BLE001 - best effort: any backend may refuse
    d = None
  if d is None:
    try:
      cached = getattr(compiled, "module_cost", None)  # a CachedExecutable's
      d = normalize_cost_analysis(cached if cached is not None else module_cost(compiled))
      source = "hlo_module_cost_analysis" if d else source
    except Exception:  # noqa: BLE001
      d = None
  if not d:
    return XlaCost()
  # HloCostAnalysis leaves out a property that is zero; custom calls make the time and
  # bytes estimates negative ("unknown").
  flops = _get(d, "flops")
  trans = _get(d, "transcendentals")
  if flops is None and trans is None and source == "hlo_module_cost_analysis":
    flops = 0.0  # the analysis ran and found neither
  if trans is None and flops is not None:
    trans = 0.0
  nbytes = _get(d, "bytes accessed", "bytes_accessed")
  seconds = _get(d, "optimal_seconds")
  return XlaCost(flops if flops is not None else (0.0 if trans else None), trans,
                 nbytes if nbytes is None or nbytes >= 0 else None,
                 seconds if seconds is None or seconds >= 0 else None, source)
