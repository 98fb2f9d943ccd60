"""The result type: a frozen, additive count of floating-point work.

FPO (Schwartz et al., "Green AI", CACM 2020) counts floating-point work as two base
operations, ADD and MUL. A `Cost` holds both, plus the raw number of transcendental
evaluations, integer operations (kept out of FPO), unfused bytes, and breakdowns by
primitive and by scope. Costs add and scale, so Equation 1 (E * D * H) is plain
arithmetic: ``step_cost * steps * trials``.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import json
import math
import numbers
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from jaxgreen._src.report import count_report

Number = int | float

_COUNT_FIELDS = ("adds", "muls", "transcendentals", "int_ops", "bytes")


def _scale(x: Number, k: Number) -> Number:
  y = x * k
  # Keep exact integers exact; `mean` over cond branches may give a fraction.
  if isinstance(y, float) and y.is_integer() and abs(y) < 2**53:
    return int(y)
  return y


def _div(x: Number, k: Number) -> Number:
  # Exact when it divides evenly (a `mean` of integer counts often does).
  if isinstance(x, int) and isinstance(k, int) and x % k == 0:
    return x // k
  return _scale(x / k, 1)


def _factor(k: Any, *, divide: bool = False) -> Number | None:
  """k as a Python int or float (numpy scalars included) to scale a cost by (finite,
  k >= 0) or divide it by (finite, k > 0); None if k is not a number."""
  if isinstance(k, bool) or not isinstance(k, numbers.Real):
    return None
  k = int(k) if isinstance(k, numbers.Integral) else float(k)
  if not math.isfinite(k) or (k <= 0 if divide else k < 0):
    raise ValueError(f"a cost can only be {'divided' if divide else 'scaled'} by a "
                     f"finite k {'>' if divide else '>='} 0, got k={k!r}")
  return k


@dataclasses.dataclass(frozen=True, slots=True)
class Counts:
  """Flat counts for one row of a breakdown (a primitive or a scope)."""

  adds: Number = 0
  muls: Number = 0
  transcendentals: Number = 0
  int_ops: Number = 0
  bytes: Number = 0

  @property
  def fpo(self) -> Number:
    """Floating-point operations: ADD + MUL."""
    return self.adds + self.muls

  def __add__(self, other: Counts) -> Counts:
    if not isinstance(other, Counts):
      return NotImplemented
    return Counts(*(getattr(self, f) + getattr(other, f) for f in _COUNT_FIELDS))

  def __mul__(self, k: Number) -> Counts:
    f = _factor(k)
    if f is None:
      return NotImplemented
    return Counts(*(_scale(getattr(self, name), f) for name in _COUNT_FIELDS))

  __rmul__ = __mul__

  def __truediv__(self, k: Number) -> Counts:
    f = _factor(k, divide=True)
    if f is None:
      return NotImplemented
    return Counts(*(_div(getattr(self, name), f) for name in _COUNT_FIELDS))

  def __bool__(self) -> bool:
    return any(getattr(self, f) for f in _COUNT_FIELDS)

  def to_dict(self) -> dict[str, Number]:
    return {f: getattr(self, f) for f in _COUNT_FIELDS} | {"fpo": self.fpo}


ZERO = Counts()


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
  out = dict(a)
  for k, v in b.items():
    out[k] = out[k] + v if k in out else v
  return out


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
  return MappingProxyType(dict(d))


@dataclasses.dataclass(frozen=True, eq=False)
class Cost:
  """Floating-point work of a program, counted as ADD and MUL.

  Attributes:
    adds: ADD operations (subtractions, comparisons and the ADD share of priced
      operations such as ``exp`` included).
    muls: MUL operations (divisions and the MUL share of priced operations).
    transcendentals: raw number of exp/log/tanh/... evaluations. They are *also*
      priced into ``adds``/``muls`` by the :class:`~jaxgreen.CostModel`.
    int_ops: integer and boolean arithmetic; not part of FPO.
    bytes: operand + result bytes of every counted equation, as if nothing were
      fused (an upper bound on memory traffic).
    by_primitive: primitive name -> :class:`Counts`.
    by_scope: name-stack / Flax module path -> :class:`Counts` ("" is the top level).
    uncounted: primitive name -> occurrences that had no rule (never a silent zero).
    inexact: human-readable reasons the count is not exact (e.g. a while loop
      whose trip count is unknown and was counted once).
    assumed: figures the count rests on that were given, not proven from the
      program (a while loop's trip count passed as ``trip_counts=``). The count is
      exact *given* them, so ``exact`` stays True; reports name them.
    cond: the policy used for ``cond``/``switch`` branches ("max", "min", "mean").
    by_site: where each piece of work was written, filled when a jaxpr is counted:
      ``"STACK\\tSCOPE\\tPRIMITIVE"`` -> :class:`Counts`, where STACK is the user's
      Python stack (``file:line:function`` frames joined by ``;``, outermost first,
      library frames folded; ``""`` when no user frame wrote it). Its rows sum to the
      totals. :attr:`by_stack` and :attr:`by_source` sum it by stack and by line;
      :meth:`sites` splits the keys; :meth:`to_pprof` writes it as a profile.

  Example:
    >>> from jaxgreen._src.cost import Cost
    >>> step = Cost(adds=3, muls=4)
    >>> (step * 10).fpo, (step + step).muls, Cost.from_json(step.to_json()) == step
    (70, 8, True)
  """

  adds: Number = 0
  muls: Number = 0
  transcendentals: Number = 0
  int_ops: Number = 0
  bytes: Number = 0
  by_primitive: Mapping[str, Counts] = dataclasses.field(default_factory=dict)
  by_scope: Mapping[str, Counts] = dataclasses.field(default_factory=dict)
  uncounted: Mapping[str, Number] = dataclasses.field(default_factory=dict)
  inexact: tuple[str, ...] = ()
  cond: str = "max"
  assumed: tuple[str, ...] = ()
  by_site: Mapping[str, Counts] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    for name in _COUNT_FIELDS:
      v = getattr(self, name)
      if type(v) is int and v >= 0:  # the common case, fast
        continue
      if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"Cost({name}={v!r}) must be a number >= 0")
      if not v >= 0 or not math.isfinite(v):
        raise ValueError(f"Cost({name}={v!r}): a count must be a finite number >= 0")
      if not isinstance(v, int | float):  # numpy scalars: plain Python numbers
        object.__setattr__(self, name, int(v) if isinstance(v, numbers.Integral) else float(v))
    for name in ("by_primitive", "by_scope", "uncounted", "by_site"):
      object.__setattr__(self, name, _frozen(getattr(self, name)))
    object.__setattr__(self, "inexact", tuple(self.inexact))
    object.__setattr__(self, "assumed", tuple(self.assumed))

  # -- derived ---------------------------------------------------------------

  @property
  def fpo(self) -> Number:
    """Floating-point operations as defined by Green AI: ADD + MUL."""
    return self.adds + self.muls

  @property
  def exact(self) -> bool:
    """False when any primitive was uncounted or a loop trip count was unknown."""
    return not self.uncounted and not self.inexact

  @property
  def counts(self) -> Counts:
    return Counts(self.adds, self.muls, self.transcendentals, self.int_ops, self.bytes)

  # -- source lines, profiles and reports ----------------------------------------------

  def sites(self) -> list[tuple[str, str, str, Counts]]:
    """:attr:`by_site` as ``(stack, scope, primitive, counts)`` rows, largest FPO first."""
    out = []
    for key, c in by_fpo(self.by_site):
      stack, scope, prim = key.split("\t")
      out.append((stack, scope, prim, c))
    return out

  @functools.cached_property
  def by_stack(self) -> Mapping[str, Counts]:
    """The user's Python stack (see :attr:`by_site`) -> :class:`Counts`, largest FPO
    first; its rows sum to the totals."""
    stacks: dict[str, Counts] = {}
    for key, c in self.by_site.items():
      stack = key.split("\t", 1)[0]
      stacks[stack] = stacks[stack] + c if stack in stacks else c
    return _frozen(dict(by_fpo(stacks)))

  @functools.cached_property
  def by_source(self) -> Mapping[str, Counts]:
    """The user's source line (``file:line:function``, the innermost user frame of
    :attr:`by_stack`) -> :class:`Counts`, largest FPO first. Its rows sum to the totals
    (``""`` holds work no user frame wrote); empty for counts of compiled HLO, which
    carry no Python stacks.

    Example:
      >>> c = Cost(adds=3, muls=4, by_site={"t.py:1:main;m.py:9:f\\tmlp\\tmul": Counts(3, 4)})
      >>> dict(c.by_source)
      {'m.py:9:f': Counts(adds=3, muls=4, transcendentals=0, int_ops=0, bytes=0)}
    """
    from jaxgreen._src._source import innermost

    lines: dict[str, Counts] = {}
    for stack, c in self.by_stack.items():
      line = innermost(stack)
      lines[line] = lines[line] + c if line in lines else c
    return _frozen(dict(by_fpo(lines)))

  def source_table(self, top: int = 12, markdown: bool = False) -> str:
    """A plain-text (or Markdown) table of the ``top`` source lines by FPO, with their
    share of the total (files shown relative to the working directory)."""
    from jaxgreen._src._source import short

    rows = [(short(k), c.fpo, c.adds, c.muls) for k, c in self.by_source.items()
            if c.fpo or c.int_ops]
    totals = [("FPO (ADD + MUL)", self.fpo, ""), ("  ADD", self.adds, ""),
              ("  MUL", self.muls, "")]
    notes = [] if self.by_site else ["no source lines: only jaxpr counts carry them"]
    return count_report(totals, [("source line", "", rows)], notes, top=top,
                        markdown=markdown)

  def to_pprof(self, path: str | None = None) -> builtins.bytes:
    """This cost as a pprof profile (gzipped ``profile.proto``), for ``go tool pprof``,
    speedscope or any flame-graph viewer: sample types FPO, ADD, MUL, transcendentals
    and bytes; one sample per (stack, primitive, scope), its locations the user's Python
    stack and its labels ``scope`` and ``primitive``. Written to ``path`` when given.

    Returns:
      The gzipped profile.
    """
    from jaxgreen._src._pprof import profile

    data = profile(self)
    if path is not None:
      with open(path, "wb") as f:
        f.write(data)
    return data

  def to_html(self, path: str | None = None, *, title: str = "FPO report") -> str:
    """A self-contained HTML report of this cost (see :func:`jaxgreen.report_html`).

    Returns:
      The page; also written to ``path`` when given.
    """
    from jaxgreen._src._report_html import report_html

    return report_html(self, path=path, title=title)

  # -- arithmetic --------------------------------------------------------------

  def __add__(self, other: Cost) -> Cost:
    if isinstance(other, int) and other == 0:  # so that sum(costs) works
      return self
    if not isinstance(other, Cost):
      return NotImplemented
    return _with_counts(
        self.counts + other.counts,
        by_primitive=_merge(self.by_primitive, other.by_primitive),
        by_scope=_merge(self.by_scope, other.by_scope),
        uncounted=_merge(self.uncounted, other.uncounted),
        inexact=_unique(self.inexact + other.inexact),
        cond=self.cond,
        assumed=_unique(self.assumed + other.assumed),
        by_site=_merge(self.by_site, other.by_site),
    )

  __radd__ = __add__

  def __mul__(self, k: Number) -> Cost:
    f = _factor(k)
    if f is None:
      return NotImplemented
    return _with_counts(
        self.counts * f,
        by_primitive={n: v * f for n, v in self.by_primitive.items()},
        by_scope={n: v * f for n, v in self.by_scope.items()},
        by_site={n: v * f for n, v in self.by_site.items()},
        uncounted={n: _scale(v, f) for n, v in self.uncounted.items()},
        inexact=self.inexact,
        cond=self.cond,
        assumed=self.assumed,
    )

  __rmul__ = __mul__

  def __truediv__(self, k: Number) -> Cost:
    """Divides every count by ``k`` (e.g. an average over ``k`` steps or branches).

    ``uncounted`` keeps its occurrence counts: a primitive seen once is not a third.
    """
    f = _factor(k, divide=True)
    if f is None:
      return NotImplemented
    return _with_counts(
        self.counts / f,
        by_primitive={n: v / f for n, v in self.by_primitive.items()},
        by_scope={n: v / f for n, v in self.by_scope.items()},
        by_site={n: v / f for n, v in self.by_site.items()},
        uncounted=dict(self.uncounted),
        inexact=self.inexact,
        cond=self.cond,
        assumed=self.assumed,
    )

  def __eq__(self, other: object) -> bool:
    if not isinstance(other, Cost):
      return NotImplemented
    # Where the work was written (by_site) is provenance, not part of the count: one
    # program traced from two places costs the same.
    a, b = self.to_dict(), other.to_dict()
    a.pop("by_site", None)
    b.pop("by_site", None)
    return a == b

  __hash__ = None  # type: ignore[assignment]

  # -- serialisation -----------------------------------------------------------

  def to_dict(self) -> dict[str, Any]:
    """A JSON-ready dict; ``Cost.from_dict(c.to_dict()) == c``."""
    return {
        "fpo": self.fpo,
        **{f: getattr(self, f) for f in _COUNT_FIELDS},
        "exact": self.exact,
        "cond": self.cond,
        "inexact": list(self.inexact),
        "assumed": list(self.assumed),
        "uncounted": dict(sorted(self.uncounted.items())),
        "by_primitive": {k: v.to_dict() for k, v in by_fpo(self.by_primitive)},
        "by_scope": {k: v.to_dict() for k, v in by_fpo(self.by_scope)},
        "by_site": {k: v.to_dict() for k, v in by_fpo(self.by_site)},
    }

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> Cost:
    def counts(m):
      return {k: Counts(**{f: v[f] for f in _COUNT_FIELDS}) for k, v in m.items()}

    return cls(
        **{f: d[f] for f in _COUNT_FIELDS},
        by_primitive=counts(d.get("by_primitive", {})),
        by_scope=counts(d.get("by_scope", {})),
        uncounted=dict(d.get("uncounted", {})),
        inexact=tuple(d.get("inexact", ())),
        cond=d.get("cond", "max"),
        assumed=tuple(d.get("assumed", ())),
        by_site=counts(d.get("by_site", {})),  # absent from JSON written before it
    )

  def to_json(self, **kw) -> str:
    return json.dumps(self.to_dict(), **kw)

  @classmethod
  def from_json(cls, s: str) -> Cost:
    return cls.from_dict(json.loads(s))

  def __repr__(self) -> str:
    extra = "" if self.exact else ", exact=False"
    if self.assumed:
      extra += f", assumed={len(self.assumed)}"
    return (f"Cost(fpo={self.fpo:,}, adds={self.adds:,}, muls={self.muls:,}, "
            f"transcendentals={self.transcendentals:,}, int_ops={self.int_ops:,}, "
            f"bytes={self.bytes:,}{extra})")

  def table(self, top: int = 12, markdown: bool = False) -> str:
    """A plain-text (or Markdown) report: totals, then the ``top`` primitives and
    scopes by FPO, then what was not counted."""
    totals = [("FPO (ADD + MUL)", self.fpo, ""), ("  ADD", self.adds, ""),
              ("  MUL", self.muls, ""),
              ("transcendentals (also in FPO)", self.transcendentals, ""),
              ("integer ops (not FPO)", self.int_ops, ""), ("bytes (unfused)", self.bytes, "B")]
    # Rows of FPO only: integer-only work (index arithmetic) is the total's own line.
    breakdowns = [(title, blank, [(k, c.fpo, c.adds, c.muls) for k, c in by_fpo(m) if c.fpo])
                  for title, m, blank in (("primitive", self.by_primitive, "?"),
                                          ("scope", self.by_scope, "<top level>"))]
    return count_report(totals, breakdowns, self._notes(), top=top, markdown=markdown)

  def _integer_note(self) -> list[str]:
    ints = [k for k, c in by_fpo(self.by_primitive) if c.int_ops and not c.fpo]
    if not ints:
      return []
    more = f" and {len(ints) - 6} more" if len(ints) > 6 else ""
    return [f"integer-only primitives (no FPO, in 'integer ops'): {', '.join(ints[:6])}{more}"]

  def _repr_pretty_(self, p: Any, cycle: bool) -> None:
    """IPython's text view: the report of :meth:`table` (``repr`` stays one line)."""
    p.text(repr(self) if cycle else self.table())

  def _repr_html_(self) -> str:
    """The notebook view: totals, FPO by primitive with share bars, and the scopes as a
    foldable tree with subtotals."""
    from jaxgreen._src import _html
    from jaxgreen._src.report import human, number

    total = self.fpo
    totals = _html.table(
        ["", "count", "approx."],
        [[label, number(v), human(v, unit)] for label, v, unit in (
            ("FPO (ADD + MUL)", self.fpo, ""), ("ADD", self.adds, ""), ("MUL", self.muls, ""),
            ("transcendentals (also in FPO)", self.transcendentals, ""),
            ("integer ops (not FPO)", self.int_ops, ""), ("bytes (unfused)", self.bytes, "B"))])
    prims = _html.table(
        ["primitive", "FPO", "ADD", "MUL", "share of FPO"],
        [[k or "?", number(c.fpo), number(c.adds), number(c.muls),
          _html.bar(c.fpo / total if total else None)]
         for k, c in by_fpo(self.by_primitive) if c.fpo], "lrrrl")
    tree = _scope_tree(self.by_scope)
    scopes = _html.tree(["scope", "FPO", "own FPO", "ADD", "MUL"], tree[:_TREE_ROWS],
                        bar_header="share of FPO")
    if len(tree) > _TREE_ROWS:
      scopes = _html.Html(scopes + _html.notes([
          f"... and {len(tree) - _TREE_ROWS:,} more scopes (all: to_pandas(by='scope'))"]))
    exact = _html.badge("exact" if self.exact else "NOT exact", self.exact)
    return _html.fragment(
        totals, _html.section("by primitive", prims),
        _html.section("by scope (name stack)", scopes, open=len(self.by_scope) > 1),
        _html.notes(self._notes()), title=_html.Html(
            f"Cost: {_html.esc(number(total))} FPO ({_html.esc(human(total))}) {exact}"))

  def to_pandas(self, by: str = "primitive") -> Any:
    """The breakdown ``by`` ``"primitive"`` or ``"scope"`` as a ``pandas.DataFrame``, one
    row per name with every count and ``fpo``, sorted by FPO (needs pandas:
    ``pip install 'jaxgreen[pandas]'``)."""
    tables = {"primitive": self.by_primitive, "scope": self.by_scope}
    if by not in tables:
      raise ValueError(f"Cost.to_pandas(by={by!r}): use one of {', '.join(tables)}")
    from jaxgreen._src.report import data_frame

    return data_frame([{by: k, **c.to_dict()} for k, c in by_fpo(tables[by])],
                      "Cost.to_pandas")

  def _notes(self) -> list[str]:
    if self.exact:
      out = ["exact: yes (every primitive counted, every loop trip count known)"]
    else:
      out = ["exact: NO"]
      out += [f"  uncounted primitive {name!r} x {n} (no rule; register one with "
              f"jaxgreen.register_rule)" for name, n in sorted(self.uncounted.items())]
      out += [f"  {why}" for why in self.inexact]
    out += [f"rests on a given figure: {why}" for why in self.assumed]
    if self.cond != "max":
      out.append(f"cond/switch branches counted by policy {self.cond!r}")
    if any(isinstance(v, float) and not v.is_integer() for v in (self.adds, self.muls)):
      out.append("~: a fraction rounded (a mean, e.g. over cond branches); to_dict() has it")
    return out + self._integer_note()


def _with_counts(c: Counts, **rest: Any) -> Cost:
  """A Cost with the totals of ``c`` and the other fields from ``rest``."""
  return Cost(c.adds, c.muls, c.transcendentals, c.int_ops, c.bytes, **rest)


def _unique(xs: Iterable[str]) -> tuple[str, ...]:
  return tuple(dict.fromkeys(xs))


def by_fpo(m: Mapping[str, Counts]) -> list[tuple[str, Counts]]:
  """Rows sorted by FPO, then integer ops (both descending), then name."""
  return sorted(m.items(), key=lambda kv: (-kv[1].fpo, -kv[1].int_ops, kv[0]))


_TREE_ROWS = 2000  # scope tree rows a notebook view shows (the first, in tree order)


def _scope_tree(by_scope: Mapping[str, Counts]
                ) -> list[tuple[tuple[str, ...], list[str], float | None]]:
  """Rows of the scope tree (path, cells, share), parents first, siblings by FPO; each
  node's figures include its descendants'."""
  from jaxgreen._src.report import number

  sub: dict[tuple[str, ...], Counts] = {}
  own: dict[tuple[str, ...], Counts] = {}
  for scope, c in by_scope.items():
    if not c.fpo:  # integer-only work: in the totals, not in an FPO tree
      continue
    path = tuple(s for s in scope.split("/") if s) or ("<top level>",)
    own[path] = own.get(path, ZERO) + c
    for k in range(1, len(path) + 1):
      sub[path[:k]] = sub.get(path[:k], ZERO) + c
  total = sum(c.fpo for c in by_scope.values())
  ordered = sorted(sub, key=lambda p: [(-sub[p[:k]].fpo, p[k - 1]) for k in range(1, len(p) + 1)])
  return [(p, [number(sub[p].fpo), number(own.get(p, ZERO).fpo), number(sub[p].adds),
               number(sub[p].muls)], sub[p].fpo / total if total else None)
          for p in ordered]
