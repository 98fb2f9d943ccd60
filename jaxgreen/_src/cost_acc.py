"""The mutable sums of a counting walk, frozen into a :class:`~jaxgreen._src.cost.Cost` at its end.

Both counters fill one :class:`CostAcc` per walked (sub-)program: the jaxpr walker
(:mod:`jaxgreen._src.jaxpr.interpreter`) and the HLO walker, whose
:class:`~jaxgreen._src.hlo.tally.Tally` adds XLA's replayed figures beside it. Each row of
its tables is a :class:`Sums`, the five counts of a :class:`~jaxgreen._src.cost.Counts` by
name.

Example:
  >>> acc = CostAcc()
  >>> acc.add("mul", "dense", 0, 8, 0, 0, 96)
  >>> c = acc.to_cost("max")
  >>> c.muls, c.by_scope["dense"].bytes
  (8, 96)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxgreen._src._scope import join
from jaxgreen._src.cost import Cost, Counts

Site = tuple[str, str, str]  # (the user's stack (see _source.py), scope, primitive)


class Sums:
  """The five counts of one row, mutable; a count may be a float while scaled (the HLO
  walker's ``cond="mean"``, a computation divided among devices)."""

  __slots__ = ("adds", "muls", "transcendentals", "int_ops", "bytes")

  def __init__(self, adds: Any = 0, muls: Any = 0, transcendentals: Any = 0,
               int_ops: Any = 0, bytes: Any = 0) -> None:  # noqa: A002 - Counts' name
    self.adds = adds  # ADDs (and compares, subtractions): half of FPO
    self.muls = muls  # MULs (and divisions): the other half of FPO
    self.transcendentals = transcendentals  # transcendental calls, as XLA counts them
    self.int_ops = int_ops  # integer and boolean arithmetic, kept out of FPO
    self.bytes = bytes  # operand + result bytes

  @classmethod
  def of(cls, c: Counts | Cost) -> Sums:
    return cls(c.adds, c.muls, c.transcendentals, c.int_ops, c.bytes)

  def copy(self) -> Sums:
    return Sums(self.adds, self.muls, self.transcendentals, self.int_ops, self.bytes)

  def __bool__(self) -> bool:
    return bool(self.adds or self.muls or self.transcendentals or self.int_ops or self.bytes)

  def __repr__(self) -> str:
    return (f"Sums(adds={self.adds}, muls={self.muls}, transcendentals="
            f"{self.transcendentals}, int_ops={self.int_ops}, bytes={self.bytes})")

  def add(self, o: Sums | Counts) -> None:
    self.adds += o.adds
    self.muls += o.muls
    self.transcendentals += o.transcendentals
    self.int_ops += o.int_ops
    self.bytes += o.bytes

  def add_scaled(self, o: Sums, k: Any) -> None:
    self.adds += o.adds * k
    self.muls += o.muls * k
    self.transcendentals += o.transcendentals * k
    self.int_ops += o.int_ops * k
    self.bytes += o.bytes * k

  def sub(self, o: Counts) -> None:
    self.adds -= o.adds
    self.muls -= o.muls
    self.transcendentals -= o.transcendentals
    self.int_ops -= o.int_ops
    self.bytes -= o.bytes

  def mapped(self, f: Callable[[Any], Any]) -> Sums:
    """Every count passed through ``f``."""
    return Sums(f(self.adds), f(self.muls), f(self.transcendentals), f(self.int_ops),
                f(self.bytes))

  def counts(self) -> Counts:
    return Counts(self.adds, self.muls, self.transcendentals, self.int_ops, self.bytes)


def _counts(table: dict[Any, Sums]) -> dict[Any, Counts]:
  return {k: row.counts() for k, row in table.items() if row}


class CostAcc:
  """One walk's sums: totals, per primitive, per scope and per site, and its notes.

  Attributes:
    total: everything counted.
    by_primitive: primitive name -> its rows summed.
    by_scope: scope -> its rows summed.
    by_site: (stack, scope, primitive) -> counts of walked bodies (jaxpr walker only).
    pending: the same, for this program's own equations: added to the other tables once,
      by :meth:`to_cost` (one row per equation instead of four).
    uncounted: operation -> how often it had no rule.
    inexact: why the count is not exact (an ordered set).
    assumed: figures the caller gave (``trip_counts=``) that the count rests on.
  """

  __slots__ = ("total", "by_primitive", "by_scope", "by_site", "pending", "uncounted",
               "inexact", "assumed")

  def __init__(self) -> None:
    self.total = Sums()
    self.by_primitive: dict[str, Sums] = {}
    self.by_scope: dict[str, Sums] = {}
    self.by_site: dict[Site, Sums] = {}
    self.pending: dict[Site, Sums] = {}
    self.uncounted: dict[str, Any] = {}
    self.inexact: dict[str, None] = {}
    self.assumed: dict[str, None] = {}

  def note_uncounted(self, name: str) -> None:
    """One more operation ``name`` that has no rule."""
    self.uncounted[name] = self.uncounted.get(name, 0) + 1

  # -- the HLO walker: rows added at once, bodies merged scaled --------------------------

  def add(self, prim: str, scope: str, adds: Any, muls: Any, transcendentals: Any,
          int_ops: Any, nbytes: Any) -> None:
    """One operation's counts, added to the totals and (when not all zero) to the rows of
    ``prim`` and ``scope``."""
    t = self.total
    t.adds += adds
    t.muls += muls
    t.transcendentals += transcendentals
    t.int_ops += int_ops
    t.bytes += nbytes
    if adds or muls or transcendentals or int_ops or nbytes:
      for table, key in ((self.by_primitive, prim), (self.by_scope, scope)):
        row = table.get(key)
        if row is None:
          table[key] = row = Sums()
        row.adds += adds
        row.muls += muls
        row.transcendentals += transcendentals
        row.int_ops += int_ops
        row.bytes += nbytes

  def merge(self, o: CostAcc, k: Any = 1) -> None:
    """Adds ``o``'s counts times ``k`` and its notes (once)."""
    self.total.add_scaled(o.total, k)
    for mine, theirs in ((self.by_primitive, o.by_primitive), (self.by_scope, o.by_scope)):
      for key, row in theirs.items():
        dst = mine.get(key)
        if dst is None:
          mine[key] = dst = Sums()
        dst.add_scaled(row, k)
    for key, n in o.uncounted.items():
      self.uncounted[key] = self.uncounted.get(key, 0) + n
    self.inexact.update(o.inexact)
    self.assumed.update(o.assumed)

  # -- the jaxpr walker: equations deferred per site, walked bodies merged as Costs -----

  def add_pending(self, site: Site, adds: Any, muls: Any, transcendentals: Any,
                  int_ops: Any, nbytes: Any) -> None:
    """One equation's counts at ``site``, added to the other tables by :meth:`to_cost`."""
    row = self.pending.get(site)
    if row is None:
      self.pending[site] = Sums(adds, muls, transcendentals, int_ops, nbytes)
    else:
      row.adds += adds
      row.muls += muls
      row.transcendentals += transcendentals
      row.int_ops += int_ops
      row.bytes += nbytes

  def add_cost(self, cost: Cost, prefix: str, src: str = "", prim: str = "") -> None:
    """A walked body's :class:`Cost`, its scopes below ``prefix``; for ``src`` and
    ``prim`` see :meth:`_add_sites`."""
    t = self.total
    t.adds += cost.adds
    t.muls += cost.muls
    t.transcendentals += cost.transcendentals
    t.int_ops += cost.int_ops
    t.bytes += cost.bytes
    for key, c in cost.by_primitive.items():
      _add_row(self.by_primitive, key, c)
    for key, c in cost.by_scope.items():
      _add_row(self.by_scope, join(prefix, key), c)
    self._add_sites(cost, prefix, src, prim)
    for key, n in cost.uncounted.items():
      self.uncounted[key] = self.uncounted.get(key, 0) + n
    for why in cost.inexact:
      self.inexact[why] = None
    for why in cost.assumed:
      self.assumed[why] = None

  def _add_sites(self, cost: Cost, prefix: str, src: str, prim: str) -> None:
    """Merges the sites of a walked body (see ``Cost.by_site``), its scopes below
    ``prefix``; work no user frame of the body wrote goes to the calling equation's
    stack ``src``, and work the rule gave without sites to the calling primitive
    ``prim``, so the sites always sum to the totals."""
    rest = Sums.of(cost)
    for key, c in cost.by_site.items():
      stack, scope, name = key.split("\t")
      _add_row(self.by_site, (stack or src, join(prefix, scope), name), c)
      rest.sub(c)
    if rest:
      _add_row(self.by_site, (src, prefix, prim), rest)

  def _settle_pending(self) -> None:
    """Adds the pending rows to the totals and the other tables."""
    total, prims, scopes, sites = self.total, self.by_primitive, self.by_scope, self.by_site
    for site, v in self.pending.items():
      total.add(v)
      _add_row(prims, site[2], v)
      _add_row(scopes, site[1], v)
      _add_row(sites, site, v)
    self.pending = {}

  # -- the result ---------------------------------------------------------------------

  def to_cost(self, cond: str, whole: Callable[[Any], Any] | None = None) -> Cost:
    """The sums as a :class:`Cost` under branch policy ``cond``; ``whole`` converts
    each count (the HLO walker's floats that hold whole numbers back to ints)."""
    if self.pending:
      self._settle_pending()
    prims, scopes, total = self.by_primitive, self.by_scope, self.total
    if whole is not None:
      prims = {k: v.mapped(whole) for k, v in prims.items()}
      scopes = {k: v.mapped(whole) for k, v in scopes.items()}
      total = total.mapped(whole)
    return Cost(total.adds, total.muls, total.transcendentals, total.int_ops, total.bytes,
                by_primitive=_counts(prims), by_scope=_counts(scopes),
                uncounted=self.uncounted, inexact=tuple(self.inexact), cond=cond,
                assumed=tuple(self.assumed),
                by_site={"\t".join(k): v.counts() for k, v in self.by_site.items() if v})


def _add_row(table: dict[Any, Sums], key: Any, c: Sums | Counts) -> None:
  row = table.get(key)
  if row is None:
    table[key] = Sums(c.adds, c.muls, c.transcendentals, c.int_ops, c.bytes)
  else:
    row.add(c)
