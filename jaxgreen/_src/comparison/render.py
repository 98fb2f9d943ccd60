"""How a comparison's numbers read: quantities, durations, JSON, the metrics a plot shows.

Example:
  >>> seconds(0.0123), seconds(None), quantity(2.5e9, "B")
  ('12.3 ms', 'unavailable', '2.50 GB')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from jaxgreen._src.report import human

# Metrics a bar plot can show: key -> (label, getter of a TargetResult).
PLOT_METRICS: dict[str, tuple[str, Callable[[Any], float | None]]] = {
    "step_s": ("estimated step time (s)", lambda r: r.roofline.step_s if r.roofline else None),
    "energy_j": ("estimated energy per step (J)", lambda r: r.energy_j),
    "fpo_per_joule": ("FPO per joule (estimate)", lambda r: r.fpo_per_joule),
    "per_device_fpo": ("compiled FPO per device", lambda r: r.pod.per_device.fpo),
    "sent_bytes": ("collective bytes sent per device", lambda r: r.pod.sent_bytes),
}


def quantity(v: float | None, unit: str = "") -> str:
  """``v`` in ``unit`` to three significant figures, with an SI prefix from 1000 up."""
  if v is None:
    return "unavailable"
  return human(v, unit) if abs(v) >= 1000 else (f"{v:.3g} {unit}".rstrip())


def seconds(v: float | None) -> str:
  """A duration in s, ms, us or ns, to three significant figures."""
  if v is None:
    return "unavailable"
  for scale, u in ((1, "s"), (1e-3, "ms"), (1e-6, "us")):
    if v >= scale:
      return f"{v / scale:.3g} {u}"
  return f"{v / 1e-9:.3g} ns"


def json_default(o: Any):
  """JSON for what ``json.dumps`` cannot write: a non-finite float is null."""
  if isinstance(o, float) and not math.isfinite(o):
    return None
  if dataclasses.is_dataclass(o) and not isinstance(o, type):
    return dataclasses.asdict(o)
  return str(o)
