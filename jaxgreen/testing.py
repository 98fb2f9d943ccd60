"""FPO guards for a project's own tests: pin what a program costs, see what changed.

FPO is deterministic and hardware-agnostic, so unlike time or energy it can be checked on
every pull request. :func:`assert_fpo` compares a function's count with an expected figure
or a recorded baseline and fails with a readable diff: the totals and every scope (Flax
module path) and primitive whose FPO moved, with its delta. A baseline is a plain JSON
record (:func:`record`) holding the totals, the breakdowns and the versions that produced
it (jaxgreen, jax, and a hash of the cost model's prices), so a change that comes from a
new jax or jaxgreen release is named as such instead of passing for the user's regression.

The pytest plugin (``fpo_snapshot`` fixture, ``--jaxgreen-update``) and the
``jaxgreen check`` command keep such records in a file next to the test.

Example:
  >>> import jax.numpy as jnp
  >>> from jaxgreen.testing import assert_fpo
  >>> x = jnp.ones((8, 16)); w = jnp.ones((16, 4))
  >>> cost = assert_fpo(lambda x, w: x @ w, x, w, expected=8 * 4 * (16 + 15))
  >>> assert_fpo(lambda x, w: x @ w, x, w, expected=1000)
  Traceback (most recent call last):
  ...
  jaxgreen.testing.FpoMismatch: FPO changed: 1,000 -> 992 (-8, -0.8 %)
  ...
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxgreen._src.cost import Cost
from jaxgreen._src.cost_model import DEFAULT, CostModel
from jaxgreen._src.report import markdown_table, table

#: Written into every baseline file; a file of another format is refused with its fix.
FORMAT = "jaxgreen-fpo-baseline/1"


class FpoMismatch(AssertionError):
  """A count differs from what was expected. ``diff`` is the rendered difference;
  ``versions_changed`` names the versions that differ from the baseline's (empty when
  the same jaxgreen, jax and cost model produced both: then the program changed)."""

  def __init__(self, message: str, diff: Diff):
    super().__init__(message)
    self.diff = diff
    self.versions_changed = diff.versions_changed


# -- records -------------------------------------------------------------------------

def cost_model_hash(cost_model: CostModel | None = None) -> str:
  """A short, stable hash of every price of ``cost_model`` (the default model if None).

  >>> cost_model_hash() == cost_model_hash(CostModel())
  True
  >>> cost_model_hash() == cost_model_hash(CostModel({"exp": (1, 1)}))
  False
  """
  prices = sorted((k, list(v)) for k, v in (cost_model or DEFAULT).prices.items())
  return hashlib.sha256(json.dumps(prices).encode()).hexdigest()[:12]


def versions(cost_model: CostModel | None = None) -> dict[str, str]:
  """The versions a count depends on: jaxgreen, jax, and the cost model's hash."""
  import jax

  from jaxgreen._version import __version__

  return {"jaxgreen": __version__, "jax": jax.__version__,
          "cost_model": cost_model_hash(cost_model)}


def record(cost: Cost, *, cost_model: CostModel | None = None,
           stage: str = "jaxpr") -> dict[str, Any]:
  """The JSON-ready baseline of ``cost``: totals, FPO by scope, by primitive and by
  source line (files relative to the working directory; sorted, one number per line in a
  diff), whether the count is exact, and :func:`versions`."""
  from jaxgreen._src._source import short

  lines: dict[str, float] = {}
  for k, c in cost.by_source.items():
    if c.fpo:
      key = short(k)
      lines[key] = lines.get(key, 0) + c.fpo
  return {
      "fpo": cost.fpo,
      "adds": cost.adds,
      "muls": cost.muls,
      "exact": cost.exact,
      "stage": stage,
      "by_scope": {k: c.fpo for k, c in sorted(cost.by_scope.items()) if c.fpo},
      "by_primitive": {k: c.fpo for k, c in sorted(cost.by_primitive.items()) if c.fpo},
      "by_source": dict(sorted(lines.items())),
      "uncounted": dict(sorted(cost.uncounted.items())),
      "versions": versions(cost_model),
  }


def _check_record(rec: Any, where: str) -> dict[str, Any]:
  if isinstance(rec, Cost):
    return record(rec)
  if isinstance(rec, int | float) and not isinstance(rec, bool):
    if not math.isfinite(rec) or rec < 0:
      raise ValueError(f"{where}: expected FPO must be a finite number >= 0, got {rec!r}")
    return {"fpo": rec}
  if isinstance(rec, Mapping) and isinstance(rec.get("fpo"), int | float):
    return dict(rec)
  raise TypeError(f"{where} must be an FPO number, a jaxgreen.Cost or a baseline record "
                  f"(jaxgreen.testing.record(cost), or an entry of a baseline file); "
                  f"got {type(rec).__name__}: {rec!r}")


# -- the difference ------------------------------------------------------------------

_TOP_LINES = 10  # source lines shown in a diff


def change(old: float, new: float) -> str:
  """A change in words: ``doubled``, ``halved``, ``x1.50``, ``is new``, ``is gone``.

  >>> change(512, 1024), change(9, 3), change(0, 5), change(2, 3)
  ('doubled', 'fell to a third', 'is new', 'x1.50')
  """
  if not old:
    return "is new"
  if not new:
    return "is gone"
  r = new / old
  words = {2: "doubled", 3: "tripled", 4: "quadrupled", 0.5: "halved",
           1 / 3: "fell to a third", 0.25: "fell to a quarter"}
  for k, w in words.items():
    if math.isclose(r, k, rel_tol=1e-12):
      return w
  return f"x{r:.2f}"


def _delta(old: float, new: float) -> str:
  d = new - old
  pct = f", {100 * d / old:+.1f} %" if old else ""
  return f"{_n(d, sign=True)}{pct}"


def _n(x: float, sign: bool = False) -> str:
  if isinstance(x, float) and not x.is_integer():
    return f"{x:+,.3f}" if sign else f"{x:,.3f}"
  return f"{int(x):+,}" if sign else f"{int(x):,}"


class Diff:
  """What changed between a baseline record and a new one (both from :func:`record`)."""

  def __init__(self, old: Mapping[str, Any], new: Mapping[str, Any], *, rtol: float = 0.0,
               by_scope: bool = False):
    self.old, self.new, self.rtol, self.by_scope = old, new, rtol, by_scope
    self.totals = [(k, old[k], new[k]) for k in ("fpo", "adds", "muls")
                   if k in old and k in new and not self._close(old[k], new[k])]
    self.scopes = self._rows("by_scope")
    self.primitives = self._rows("by_primitive")
    self.lines = self._rows("by_source")  # shown, never failing: lines move with edits
    ov, nv = old.get("versions") or {}, new.get("versions") or {}
    self.versions_changed = {k: (ov[k], nv[k]) for k in sorted(ov)
                             if k in nv and ov[k] != nv[k]}

  def _close(self, a: float, b: float) -> bool:
    return abs(a - b) <= self.rtol * abs(a)

  def _rows(self, key: str) -> list[tuple[str, float, float]]:
    old, new = self.old.get(key), self.new.get(key)
    if old is None or new is None:
      return []
    rows = [(k, old.get(k, 0), new.get(k, 0)) for k in sorted(set(old) | set(new))]
    return [r for r in rows if not self._close(r[1], r[2])]

  @property
  def failed(self) -> bool:
    """Totals moved beyond ``rtol``, or (with ``by_scope``) any scope did."""
    return bool(self.totals) or (self.by_scope and bool(self.scopes))

  def headline(self) -> str:
    o, n = self.old["fpo"], self.new["fpo"]
    if o == n:
      return (f"FPO unchanged ({_n(n)}), but work moved between scopes"
              if self.scopes else f"FPO unchanged: {_n(n)}")
    return f"FPO changed: {_n(o)} -> {_n(n)} ({_delta(o, n)})"

  def _tables(self, render: Callable[..., str]) -> list[str]:
    out = []
    head = ("", "baseline", "now", "delta")
    if self.totals:
      out.append(render(head, [(k, _n(o), _n(n), _delta(o, n)) for k, o, n in self.totals]))
    for title, rows in (("scope", self.scopes), ("primitive", self.primitives)):
      if rows:
        rows = sorted(rows, key=lambda r: -abs(r[2] - r[1]))
        out.append(render((title, "baseline FPO", "now", "delta"),
                          [(k or "(top level)", _n(o), _n(n), _delta(o, n))
                           for k, o, n in rows]))
    if self.lines and (self.totals or self.scopes):
      rows = sorted(self.lines, key=lambda r: -abs(r[2] - r[1]))
      shown = [(k, _n(o), _n(n), _delta(o, n), change(o, n)) for k, o, n in rows[:_TOP_LINES]]
      out.append(render(("source line", "baseline FPO", "now", "delta", "change"), shown))
      if len(rows) > _TOP_LINES:
        out.append(f"... and {len(rows) - _TOP_LINES} more lines")
    return out

  def line_notes(self) -> list[str]:
    """One sentence per source line whose FPO changed most (up to three), e.g.
    ``model.py:12:MLP.__call__: this line's FPO doubled (1,024 -> 2,048)``."""
    rows = sorted(self.lines, key=lambda r: -abs(r[2] - r[1]))[:3]
    return [f"{k}: this line's FPO {change(o, n)} ({_n(o)} -> {_n(n)})" for k, o, n in rows]

  def _versions_note(self) -> str:
    if not self.versions_changed:
      return ""
    what = ", ".join(f"{k} {a} -> {b}" for k, a, b in
                     ((k, *v) for k, v in self.versions_changed.items()))
    return (f"The baseline was recorded with other versions ({what}): this difference may "
            f"come from that upgrade, not from the program. If the new figures are right, "
            f"record them again (pytest --jaxgreen-update, or jaxgreen check --update).")

  def text(self) -> str:
    parts = [self.headline()]
    if self.lines and (self.totals or self.scopes):
      parts.append("\n".join(self.line_notes()))
    parts += self._tables(table)
    if self.new.get("exact") is False and self.old.get("exact", True):
      parts.append("The new count is not exact (see Cost.inexact).")
    if self.new.get("uncounted"):
      parts.append(f"Uncounted now: {self.new['uncounted']}")
    if note := self._versions_note():
      parts.append(note)
    return "\n\n".join(parts)

  def markdown(self) -> str:
    parts = [f"**{self.headline()}**"]
    if self.lines and (self.totals or self.scopes):
      parts.append("\n".join(f"- {note}" for note in self.line_notes()))
    parts += self._tables(markdown_table)
    if note := self._versions_note():
      parts.append(f"> {note}")
    return "\n\n".join(parts)


# -- the assertion -------------------------------------------------------------------

def check(cost: Cost, expected: Any, *, rtol: float = 0.0, by_scope: bool = False,
          cost_model: CostModel | None = None, stage: str = "jaxpr") -> Diff:
  """The :class:`Diff` of ``cost`` against ``expected`` (see :func:`assert_fpo`)."""
  if isinstance(rtol, bool) or not isinstance(rtol, int | float) or not 0 <= rtol < 1:
    raise ValueError(f"rtol must be a number in [0, 1), got {rtol!r}")
  old = _check_record(expected, "expected")
  new = record(cost, cost_model=cost_model, stage=stage)
  if "by_scope" not in old:  # a bare number: only the total is compared
    new = {k: new[k] for k in ("fpo", "exact", "uncounted", "versions")}
  return Diff(old, new, rtol=rtol, by_scope=by_scope)


def assert_fpo(fn: Callable, *args: Any, expected: Any, rtol: float = 0.0,
               by_scope: bool = False, static_argnums: int | Sequence[int] = (),
               stage: str = "jaxpr", target: str = "cpu", cond: str = "max",
               cost_model: CostModel | None = None,
               trip_counts: Mapping[str, int] | int | None = None, **kwargs: Any) -> Cost:
  """Counts ``fn(*args, **kwargs)`` and fails unless its FPO is ``expected``.

  Args:
    fn, args, kwargs: the function and its arguments, as for :func:`jaxgreen.count`
      (arrays, pytrees or ``jax.ShapeDtypeStruct``; nothing runs).
    expected: the FPO as a number, a :class:`~jaxgreen.Cost`, a baseline record
      (:func:`record`), or the path of a baseline file holding one entry.
    rtol: relative tolerance of every compared figure (default 0: exact).
    by_scope: also fail when FPO moved between scopes while the total stayed (needs a
      Cost or a record as ``expected``).
    static_argnums, stage, target, cond, cost_model, trip_counts: as for
      :func:`jaxgreen.count`.

  Returns:
    The :class:`~jaxgreen.Cost`, so further checks can follow.

  Raises:
    FpoMismatch: an AssertionError whose message is the diff: totals, then the scopes and
      primitives that changed, largest first, and the versions that differ from the
      baseline's when they do.
  """
  from jaxgreen._src.api import count

  if isinstance(expected, str | os.PathLike):
    expected = load(expected).only()
  cost = count(fn, static_argnums=static_argnums, stage=stage, target=target, cond=cond,
               cost_model=cost_model, trip_counts=trip_counts)(*args, **kwargs)
  diff = check(cost, expected, rtol=rtol, by_scope=by_scope, cost_model=cost_model,
               stage=stage)
  if diff.failed:
    raise FpoMismatch(diff.text(), diff)
  return cost


# -- baseline files ------------------------------------------------------------------

class Baselines:
  """A baseline file: named records, written as sorted, indented JSON (stable in diffs)."""

  def __init__(self, path: str | os.PathLike, entries: dict[str, dict[str, Any]] | None = None):
    self.path = os.fspath(path)
    self.entries: dict[str, dict[str, Any]] = dict(entries or {})

  def only(self) -> dict[str, Any]:
    """The single entry of the file (an error naming the entries if there are several)."""
    if len(self.entries) != 1:
      names = ", ".join(sorted(self.entries)) or "none"
      raise ValueError(f"{self.path} holds {len(self.entries)} baselines ({names}); name "
                       f"one (jaxgreen check --entry NAME)")
    return next(iter(self.entries.values()))

  def get(self, name: str) -> dict[str, Any] | None:
    return self.entries.get(name)

  def put(self, name: str, rec: Mapping[str, Any]) -> None:
    """Stores ``rec`` under ``name`` and rewrites the file at once (atomically, and under
    a lock, re-reading it first, so parallel test workers never drop each other's
    entries)."""
    with _locked(self.path):
      current = load(self.path).entries if os.path.exists(self.path) else {}
      current[name] = dict(rec)
      self.entries = current
      tmp = f"{self.path}.tmp{os.getpid()}"
      with open(tmp, "w") as f:
        json.dump({"format": FORMAT, "entries": current}, f, indent=2, sort_keys=True)
        f.write("\n")
      os.replace(tmp, self.path)


class _locked:
  """An exclusive lock on the baseline's folder (a lock on the file itself would not
  survive the atomic replace)."""

  def __init__(self, path: str):
    self.folder = os.path.dirname(os.path.abspath(path))

  def __enter__(self) -> None:
    self.fd = os.open(self.folder, os.O_RDONLY)
    try:
      import fcntl

      fcntl.flock(self.fd, fcntl.LOCK_EX)
    except ImportError:  # pragma: no cover - Windows: one writer at a time is assumed
      pass

  def __exit__(self, *exc: object) -> None:
    os.close(self.fd)  # releases the lock


def load(path: str | os.PathLike) -> Baselines:
  """Reads a baseline file (an error naming the file and the fix if it is not one)."""
  path = os.fspath(path)
  try:
    with open(path) as f:
      data = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"no baseline file {path}; record one with pytest "
                            f"--jaxgreen-update or jaxgreen check --update") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not a baseline file (invalid JSON: {e}); delete it and "
                     f"record it again with --jaxgreen-update") from None
  if not isinstance(data, dict) or data.get("format") != FORMAT:
    raise ValueError(f"{path} is not a {FORMAT} file; delete it and record it again with "
                     f"--jaxgreen-update")
  return Baselines(path, data.get("entries") or {})
