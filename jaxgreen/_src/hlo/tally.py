"""The sums of a counting walk: jaxgreen's counts and XLA's replayed figures side by side.

A :class:`Tally` holds one computation's walk: ADD/MUL/transcendentals/integer
ops/bytes in total, per primitive and per scope, what could not be counted, XLA's
flops (loops once and loops x trips), XLA's transcendentals, the difference filed per
cause (:mod:`jaxgreen._src.hlo.xla`) and the loops found. Called computations are merged
into their caller scaled by how often they run. :meth:`Tally.freeze` turns the entry
computation's tally into the public :class:`HloCount`.

Example:
  >>> t = Tally()
  >>> t.leaf("mul", "", 8.0, muls=8, nbytes=96)
  >>> r = t.freeze("max")
  >>> r.cost.muls, r.xla_flops
  (8, 8)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxgreen._src.cost import Cost, Counts
from jaxgreen._src.cost_acc import CostAcc, Sums
from jaxgreen._src.hlo.ir import as_int

_F32 = np.float32


@dataclasses.dataclass(frozen=True)
class LoopInfo:
  """One while loop: where it is, its trip count and how that was found."""

  scope: str
  trips: int | None
  how: str  # "known_trip_count", "induction variable", "unknown"
  xla_body_flops: float  # XLA's flops for one trip of body + condition


@dataclasses.dataclass(frozen=True)
class HloCount:
  """The count of one compiled (or lowered) module, per device.

  Attributes:
    cost: jaxgreen's count (ADD/MUL, CostModel prices, loops x trips).
    xla_flops: XLA's HloCostAnalysis flops as replayed by the walk (loops once).
    xla_flops_trips: the same XLA rules with every loop multiplied by its trips.
    xla_transcendentals: XLA's transcendentals as replayed (loops once).
    causes: named cause -> (jaxgreen FPO - XLA flops) for the instructions of that kind,
      loops multiplied; ``sum(causes.values()) == cost.fpo - xla_flops_trips``.
    loops: every while loop found, with its trip count.
    xla_flops_f32: ``xla_flops`` summed as XLA sums it, in float32 and in its visiting
      order; beyond 2**24 flops XLA's own total is rounded, and this is the rounded value.
  """

  cost: Cost
  xla_flops: float
  xla_flops_trips: float
  xla_transcendentals: float
  causes: Mapping[str, float]
  loops: tuple[LoopInfo, ...] = ()
  xla_flops_f32: float | None = None


class Tally(CostAcc):
  """The sums of one computation's walk: jaxgreen's counts (a :class:`CostAcc`) and
  XLA's replayed figures beside them."""

  __slots__ = ("xla_flops", "xla_flops_trips", "xla_transcendentals", "causes", "loops",
               "xla_flops_f32", "visiting_f32")

  def __init__(self) -> None:
    super().__init__()
    self.xla_flops: float = 0.0  # XLA flops, loops once (HloCostAnalysis)
    self.xla_flops_trips: float = 0.0  # the same with every loop x its trips
    self.xla_transcendentals: float = 0.0  # XLA transcendentals, loops once
    self.causes: dict[str, float] = {}  # jaxgreen FPO - XLA flops, per named cause
    self.loops: list[LoopInfo] = []  # every while loop met, with its trip count
    # XLA keeps its properties in float32: xla_flops_f32 replays that arithmetic (sums
    # in XLA's visiting order) for the instructions visited so far.
    self.xla_flops_f32 = _F32(0)
    self.visiting_f32 = _F32(0)  # XLA's float32 flops of the instruction being visited

  def total32(self) -> np.float32:
    """XLA's float32 flops so far, the instruction being visited included."""
    return _F32(self.xla_flops_f32 + self.visiting_f32)

  def flush(self) -> None:
    """Ends the visit of one instruction (its float32 flops join the sum)."""
    self.xla_flops_f32 = _F32(self.xla_flops_f32 + self.visiting_f32)
    self.visiting_f32 = _F32(0)

  def cause(self, name: str, v: float) -> None:
    """Adds ``v`` to the difference filed under cause ``name``."""
    self.causes[name] = self.causes.get(name, 0) + v

  def leaf(self, prim: str, scope: str, xla: float, xla_tr: float = 0.0,
           cause: dict[str, float] | None = None, *, adds: Any = 0, muls: Any = 0,
           transcendentals: Any = 0, int_ops: Any = 0, nbytes: Any = 0) -> None:
    """One instruction: XLA's flops and transcendentals, the difference per cause, and
    jaxgreen's counts (as :meth:`CostAcc.add`)."""
    self.add(prim, scope, adds, muls, transcendentals, int_ops, nbytes)
    self.xla_flops += xla
    self.xla_flops_trips += xla
    self.xla_transcendentals += xla_tr
    self.visiting_f32 = _F32(self.visiting_f32 + _F32(xla))
    if cause:
      for k, v in cause.items():
        if v:
          self.causes[k] = self.causes.get(k, 0) + v

  def merge(self, o: CostAcc, k_ours: Any = 1, k_xla: Any = 1) -> None:
    """Adds ``o`` scaled: ours and XLA-with-trips by ``k_ours``, XLA by ``k_xla``."""
    super().merge(o, k_ours)
    if not isinstance(o, Tally):
      return
    self.xla_flops += o.xla_flops * k_xla
    self.xla_flops_trips += o.xla_flops_trips * k_ours
    self.visiting_f32 = _F32(self.visiting_f32 + _F32(o.total32() * _F32(k_xla)))
    self.xla_transcendentals += o.xla_transcendentals * k_xla
    for key, v in o.causes.items():
      self.causes[key] = self.causes.get(key, 0) + v * k_ours
    self.loops.extend(o.loops)

  def adjust_xla(self, x32: np.float32, delta: float, cause: str) -> None:
    """Sets the XLA flops of the instruction being visited to ``x32`` (float32) and
    adds ``delta`` to the replayed XLA flops, taking it from ``cause``: XLA prices some
    instructions otherwise than as the sum of what they hold."""
    self.visiting_f32 = x32
    self.xla_flops += delta
    self.xla_flops_trips += delta
    self.causes[cause] = self.causes.get(cause, 0) - delta

  def freeze(self, cond: str) -> HloCount:
    cost = self.to_cost(cond, whole=as_int)
    return HloCount(cost, as_int(self.xla_flops), as_int(self.xla_flops_trips),
                    as_int(self.xla_transcendentals),
                    {k: as_int(v) for k, v in self.causes.items() if v},
                    tuple(self.loops), as_int(float(self.total32())))


def divided(t: Tally, n: int) -> Tally:
  """``t`` with every count divided by ``n`` (exact where it divides, as Cost / n);
  uncounted operations and notes are kept as they are."""
  def div(v: Any) -> Any:
    return v // n if isinstance(v, int) and v % n == 0 else v / n

  out = Tally()
  out.merge(t)
  out.total = out.total.mapped(div)
  out.by_primitive = {k: row.mapped(div) for k, row in out.by_primitive.items()}
  out.by_scope = {k: row.mapped(div) for k, row in out.by_scope.items()}
  out.xla_flops, out.xla_flops_trips = out.xla_flops / n, out.xla_flops_trips / n
  out.xla_transcendentals = out.xla_transcendentals / n
  out.causes = {k: v / n for k, v in out.causes.items()}
  out.xla_flops_f32 = _F32(t.total32() / _F32(n))
  out.visiting_f32 = _F32(0)
  return out


def renamed(body: Tally, name: str) -> Tally:
  """The same tally with every primitive row filed under ``name``."""
  if not body.by_primitive:
    return body
  out = Tally()
  out.merge(body)
  row = Sums()
  for r in out.by_primitive.values():
    row.add(r)
  out.by_primitive = {name: row}
  return out


def recounted(src: Tally, prim: str, scope: str, c: Counts, cause: str) -> Tally:
  """``src`` (a walked body, XLA's replay included) with jaxgreen's own count replaced
  by ``c``, filed under ``prim`` and ``scope``; the FPO difference goes to ``cause``, so
  the causes still add up."""
  out = Tally()
  out.merge(src)
  before = out.total.adds + out.total.muls
  row = Sums.of(c)
  out.total = row.copy()
  out.by_primitive = {prim: row.copy()} if row else {}
  out.by_scope = {scope: row.copy()} if row else {}
  delta = c.adds + c.muls - before
  if delta:
    out.causes[cause] = out.causes.get(cause, 0) + delta
  return out


def reduce_op(body: Tally) -> str:
  """The one primitive a reducer body computes (``add``, ``max``...), else ``""``."""
  names = [k for k, r in body.by_primitive.items()
           if r.adds or r.muls or r.transcendentals or r.int_ops]
  return names[0] if len(names) == 1 else ""
