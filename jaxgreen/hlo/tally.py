"""The sums of a counting walk: jaxgreen's counts and XLA's replayed figures side by side.

A :class:`Tally` holds one computation's walk: ADD/MUL/transcendentals/integer
ops/bytes in total, per primitive and per scope, what could not be counted, XLA's
flops (loops once and loops x trips), XLA's transcendentals, the difference filed per
cause (:mod:`jaxgreen.hlo.xla`) and the loops found. Called computations are merged
into their caller scaled by how often they run. :meth:`Tally.freeze` turns the entry
computation's tally into the public :class:`HloCount`.

Example:
  >>> t = Tally()
  >>> t.leaf("mul", "", (0, 8, 0, 0, 96), 8.0)
  >>> r = t.freeze("max")
  >>> r.cost.muls, r.xla_flops
  (8, 8)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxgreen.cost import Cost, Counts
from jaxgreen.hlo.ir import as_int

_F32 = np.float32
Row = list[Any]  # adds, muls, transcendentals, int ops, bytes


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


class Tally:
  """Mutable sums of one computation's walk."""

  __slots__ = ("tot", "prim", "scope", "unc", "inexact", "assumed", "x", "xt", "xtr",
               "causes", "loops", "x32", "cur32")

  def __init__(self) -> None:
    self.tot: Row = [0, 0, 0, 0, 0]
    self.prim: dict[str, Row] = {}
    self.scope: dict[str, Row] = {}
    self.unc: dict[str, int] = {}
    self.inexact: dict[str, None] = {}
    self.assumed: dict[str, None] = {}  # figures the caller gave (trip_counts=)
    self.x: float = 0.0    # XLA flops, loops once
    self.xt: float = 0.0   # XLA flops, loops x trips
    self.xtr: float = 0.0  # XLA transcendentals, loops once
    self.causes: dict[str, float] = {}
    self.loops: list[LoopInfo] = []
    # XLA keeps its properties in float32: x32 replays that arithmetic (sums in XLA's
    # visiting order), cur32 holds the instruction being visited.
    self.x32 = _F32(0)
    self.cur32 = _F32(0)

  def total32(self) -> np.float32:
    return _F32(self.x32 + self.cur32)

  def flush(self) -> None:
    self.x32 = _F32(self.x32 + self.cur32)
    self.cur32 = _F32(0)

  def uncounted(self, name: str) -> None:
    """One more operation ``name`` that has no rule."""
    self.unc[name] = self.unc.get(name, 0) + 1

  def cause(self, name: str, v: float) -> None:
    """Adds ``v`` to the difference filed under cause ``name``."""
    self.causes[name] = self.causes.get(name, 0) + v

  def leaf(self, prim: str, scope: str, c: tuple, xla: float, xla_tr: float = 0.0,
           cause: dict[str, float] | None = None) -> None:
    """One instruction: jaxgreen's counts ``c`` (adds, muls, transcendentals, int ops,
    bytes), XLA's flops and transcendentals, and the difference per cause."""
    for i in range(5):
      self.tot[i] += c[i]
    if any(c):
      for table, key in ((self.prim, prim), (self.scope, scope)):
        row = table.setdefault(key, [0, 0, 0, 0, 0])
        for i in range(5):
          row[i] += c[i]
    self.x += xla
    self.xt += xla
    self.xtr += xla_tr
    self.cur32 = _F32(self.cur32 + _F32(xla))
    if cause:
      for k, v in cause.items():
        if v:
          self.causes[k] = self.causes.get(k, 0) + v

  def merge(self, o: Tally, k_ours: float = 1, k_xla: float = 1) -> None:
    """Adds ``o`` scaled: ours and XLA-with-trips by ``k_ours``, XLA by ``k_xla``."""
    for i in range(5):
      self.tot[i] += o.tot[i] * k_ours
    for mine, theirs in ((self.prim, o.prim), (self.scope, o.scope)):
      for key, row in theirs.items():
        dst = mine.setdefault(key, [0, 0, 0, 0, 0])
        for i in range(5):
          dst[i] += row[i] * k_ours
    for key, n in o.unc.items():
      self.unc[key] = self.unc.get(key, 0) + n
    self.inexact.update(o.inexact)
    self.assumed.update(o.assumed)
    self.x += o.x * k_xla
    self.xt += o.xt * k_ours
    self.cur32 = _F32(self.cur32 + _F32(o.total32() * _F32(k_xla)))
    self.xtr += o.xtr * k_xla
    for key, v in o.causes.items():
      self.causes[key] = self.causes.get(key, 0) + v * k_ours
    self.loops.extend(o.loops)

  def adjust_xla(self, x32: np.float32, delta: float, cause: str) -> None:
    """Sets the XLA flops of the instruction being visited to ``x32`` (float32) and
    adds ``delta`` to the replayed XLA flops, taking it from ``cause``: XLA prices some
    instructions otherwise than as the sum of what they hold."""
    self.cur32 = x32
    self.x += delta
    self.xt += delta
    self.causes[cause] = self.causes.get(cause, 0) - delta

  def freeze(self, cond: str) -> HloCount:
    def counts(table: dict[str, Row]) -> dict[str, Counts]:
      return {k: Counts(*(as_int(v) for v in row)) for k, row in table.items() if any(row)}

    adds, muls, tr, iops, nbytes = (as_int(v) for v in self.tot)
    cost = Cost(adds, muls, tr, iops, nbytes, by_primitive=counts(self.prim),
                by_scope=counts(self.scope), uncounted=self.unc,
                inexact=tuple(self.inexact), assumed=tuple(self.assumed), cond=cond)
    return HloCount(cost, as_int(self.x), as_int(self.xt), as_int(self.xtr),
                    {k: as_int(v) for k, v in self.causes.items() if v},
                    tuple(self.loops), as_int(float(self.total32())))


def divided(t: Tally, n: int) -> Tally:
  """``t`` with every count divided by ``n`` (exact where it divides, as Cost / n);
  uncounted operations and notes are kept as they are."""
  def div(v: Any) -> Any:
    return v // n if isinstance(v, int) and v % n == 0 else v / n

  out = Tally()
  out.merge(t)
  out.tot = [div(v) for v in out.tot]
  out.prim = {k: [div(v) for v in row] for k, row in out.prim.items()}
  out.scope = {k: [div(v) for v in row] for k, row in out.scope.items()}
  out.x, out.xt, out.xtr = out.x / n, out.xt / n, out.xtr / n
  out.causes = {k: v / n for k, v in out.causes.items()}
  out.x32 = _F32(t.total32() / _F32(n))
  out.cur32 = _F32(0)
  return out


def renamed(body: Tally, name: str) -> Tally:
  """The same tally with every primitive row filed under ``name``."""
  if not body.prim:
    return body
  out = Tally()
  out.merge(body)
  row: Row = [0, 0, 0, 0, 0]
  for r in out.prim.values():
    for i in range(5):
      row[i] += r[i]
  out.prim = {name: row}
  return out


def recounted(src: Tally, prim: str, scope: str, c: tuple, cause: str) -> Tally:
  """``src`` (a walked body, XLA's replay included) with jaxgreen's own count replaced
  by ``c`` (adds, muls, transcendentals, int ops, bytes), filed under ``prim`` and
  ``scope``; the FPO difference goes to ``cause``, so the causes still add up."""
  out = Tally()
  out.merge(src)
  before = out.tot[0] + out.tot[1]
  out.tot = list(c)
  out.prim = {prim: list(c)} if any(c) else {}
  out.scope = {scope: list(c)} if any(c) else {}
  delta = c[0] + c[1] - before
  if delta:
    out.causes[cause] = out.causes.get(cause, 0) + delta
  return out


def reduce_op(body: Tally) -> str:
  """The one primitive a reducer body computes (``add``, ``max``...), else ``""``."""
  names = [k for k, r in body.prim.items() if any(r[:4])]
  return names[0] if len(names) == 1 else ""
