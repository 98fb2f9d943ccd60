"""Trip counts of while loops and constant branch indices, read symbolically from HLO.

CPU and GPU compilers record ``known_trip_count`` in a while loop's backend config.
Where it is missing (TPU, and every lowered StableHLO module) the loop is recognised as
a counted loop: the condition compares a tuple element (the induction variable) with a
constant, the body adds a constant step to it, and the initial value is a constant;
:func:`jaxgreen._src.formulas.counted_loop_trips` then gives the trips.

Values are followed as small symbolic terms: ``("c", v)`` a constant, ``("iv", k)``
tuple element k of the loop state, ``("iv+", k, term)`` element k plus a step,
``("param", i)`` parameter i of a fused computation; None when unknown.

Example:
  >>> from jaxgreen._src.hlo.parse import parse_module
  >>> m = parse_module('''HloModule m
  ... %cond (p: (s32[])) -> pred[] {
  ...   %p = (s32[]) parameter(0)
  ...   %i = s32[] get-tuple-element((s32[]) %p), index=0
  ...   %n = s32[] constant(10)
  ...   ROOT %lt = pred[] compare(s32[] %i, s32[] %n), direction=LT
  ... }
  ... %body (p: (s32[])) -> (s32[]) {
  ...   %p = (s32[]) parameter(0)
  ...   %i = s32[] get-tuple-element((s32[]) %p), index=0
  ...   %one = s32[] constant(1)
  ...   %j = s32[] add(s32[] %i, s32[] %one)
  ...   ROOT %t = (s32[]) tuple(s32[] %j)
  ... }
  ... ENTRY %main () -> (s32[]) {
  ...   %zero = s32[] constant(0)
  ...   %init = (s32[]) tuple(s32[] %zero)
  ...   ROOT %w = (s32[]) while((s32[]) %init), condition=%cond, body=%body
  ... }''')
  >>> main = m.entry_computation
  >>> trip_count(m, main, main.root)
  (10, 'induction variable')
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from jaxgreen._src.formulas import counted_loop_trips
from jaxgreen._src.hlo.ir import Computation, Instr, Module

Sym = tuple[Any, ...] | None
Env = dict[int, Any]

_KNOWN_TRIPS = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_PASS = frozenset({"copy", "bitcast", "convert", "reshape", "broadcast"})
_FOLD = {"maximum": max, "minimum": min}
_INT = re.compile(r"-?\d+")


def trip_count(module: Module, comp: Computation, w: Instr) -> tuple[int | None, str]:
  """The trip count of while instruction ``w`` and how it was found:
  ``"known_trip_count"``, ``"induction variable"`` or ``"unknown"`` (None)."""
  m = _KNOWN_TRIPS.search(w.attrs)
  if m:
    return int(m.group(1)), "known_trip_count"
  try:
    n = _derive_trips(module, comp, w)
  except (KeyError, IndexError, ValueError, ZeroDivisionError):
    n = None
  return (n, "induction variable") if n is not None else (None, "unknown")


def constant_branch(module: Module, comp: Computation, ins: Instr, n: int) -> int | None:
  """The branch a conditional with a constant index (or predicate) takes, else None.

  An index out of range takes the last branch (HLO semantics); a predicate selects
  ``true_computation`` (listed first) when true.
  """
  if not ins.operands:
    return None
  try:
    v = _sym(module, comp, ins.operands[0], {})
  except (KeyError, IndexError, ValueError):
    return None
  if not v or v[0] != "c":
    return None
  if ins.called("branch_computations"):
    i = int(v[1])
    return i if 0 <= i < n else n - 1
  return 0 if v[1] else min(1, n - 1)


def _loop_init(module: Module, comp: Computation, w: Instr) -> tuple[Computation, Instr | None]:
  """The instruction that gives loop ``w`` its initial state, and its computation.

  XLA:CPU wraps a loop in a call: its state then comes from the caller's operand.
  """
  init = comp.by_name.get(w.operands[0])
  init_comp = comp
  for _ in range(8):
    if init is None or init.opcode != "parameter":
      break
    site = _unique_call_site(module, init_comp.name)
    idx = int(init.operands[0])
    if site is None or idx >= len(site[1].operands):
      break
    init_comp, init = site[0], site[0].by_name.get(site[1].operands[idx])
  return init_comp, init


class _Loop:
  """The symbolic view of one while loop: its initial state and its body's result."""

  def __init__(self, module: Module, comp: Computation, w: Instr):
    self.m = module
    self.body = module.computations[w.called("body")[0]]
    self.init_comp, self.init = _loop_init(module, comp, w)

  def init_value(self, k: int) -> Any:
    """The constant initial value of tuple element ``k``, else None."""
    init = self.init
    if init is None or init.opcode != "tuple" or k >= len(init.operands):
      return None
    v = _sym(self.m, self.init_comp, init.operands[k], {})
    return v[1] if v and v[0] == "c" else None

  def next_value(self, k: int) -> Sym:
    """Tuple element ``k`` after one trip, as a term of the state before it."""
    return _sym(self.m, self.body, self.body.root.operands[k], {})

  def const_of(self, s: Sym) -> Any:
    """The value of term ``s`` if it is a constant or a loop-invariant element
    initialised to a constant, else None."""
    if s is None:
      return None
    if s[0] == "c":
      return s[1]
    if s[0] == "iv" and self.next_value(s[1]) == ("iv", s[1]):
      return self.init_value(s[1])
    return None

  def counter(self, s: Sym) -> tuple[int, Any] | None:
    """(k, offset) for tuple element k plus a constant offset, else None."""
    if s and s[0] == "iv" and self.const_of(s) is None:
      return s[1], 0
    if s and s[0] == "iv+" and self.const_of(("iv", s[1])) is None:
      off = self.const_of(s[2])
      return (s[1], off) if off is not None else None
    return None


def _derive_trips(module: Module, comp: Computation, w: Instr) -> int | None:
  cond = module.computations[w.called("condition")[0]]
  loop = _Loop(module, comp, w)
  cmp = _find_compare(module, cond, cond.root.name, {})
  if cmp is None or loop.body.root.opcode != "tuple":
    return None
  direction, lhs, rhs = cmp
  lc, rc = loop.counter(lhs), loop.counter(rhs)
  if lc is not None and loop.const_of(rhs) is not None:
    (k, offset), bound, counter_first = lc, loop.const_of(rhs), True
  elif rc is not None and loop.const_of(lhs) is not None:
    (k, offset), bound, counter_first = rc, loop.const_of(lhs), False
  else:
    return None
  start = loop.init_value(k)
  step_sym = loop.next_value(k)
  if start is None or step_sym is None or step_sym[0] != "iv+" or step_sym[1] != k:
    return None
  step = loop.const_of(step_sym[2])
  if step is None:
    return None
  return counted_loop_trips(direction, counter_first, offset, bound, start, step)


def _unique_call_site(module: Module, name: str) -> tuple[Computation, Instr] | None:
  """The one ``call`` instruction that calls computation ``name``, with its computation."""
  sites = [(c, i) for c in module.computations.values() for i in c.instrs
           if i.opcode == "call" and name in i.called("to_apply")]
  return sites[0] if len(sites) == 1 else None


# -- symbolic values --------------------------------------------------------------------

_Rule = Callable[[Module, Computation, Instr, Env], Sym]


def _sym(module: Module, comp: Computation, name: str, env: Env) -> Sym:
  """The symbolic term of value ``name`` in ``comp`` (``env``: terms of the parameters
  of a fused computation)."""
  ins = comp.by_name.get(name)
  if ins is None:
    return None
  op = ins.opcode
  if op in _PASS:
    return _sym(module, comp, ins.operands[0], env)
  rule = _SYM_RULES.get(op)
  return rule(module, comp, ins, env) if rule is not None else None


def _sym_constant(module: Module, comp: Computation, ins: Instr, env: Env) -> Sym:
  try:
    v = ins.operands[0].strip()
    if v in ("true", "false"):  # a pred constant (a branch predicate)
      return ("c", int(v == "true"))
    return ("c", int(v)) if _INT.fullmatch(v) else ("c", float(v))
  except (IndexError, ValueError):
    return None


def _sym_parameter(module: Module, comp: Computation, ins: Instr, env: Env) -> Sym:
  idx = int(ins.operands[0])
  return env.get(idx, ("param", idx))


def _sym_element(module: Module, comp: Computation, ins: Instr, env: Env) -> Sym:
  src = comp.by_name.get(ins.operands[0])
  if src is not None and src.opcode == "parameter" and not env:
    return ("iv", ins.int_attr("index", 0))
  return None


def _sym_fold(module: Module, comp: Computation, ins: Instr, env: Env) -> Sym:
  """maximum, minimum, clamp of constants only (a switch's clamped index)."""
  vals = [_sym(module, comp, o, env) for o in ins.operands]
  if not vals or any(not v or v[0] != "c" for v in vals):
    return None
  c = [v[1] for v in vals if v]
  if ins.opcode == "clamp":
    return ("c", min(max(c[1], c[0]), c[2]))
  return ("c", _FOLD[ins.opcode](c[0], c[1]))


def _sym_add(module: Module, comp: Computation, ins: Instr, env: Env) -> Sym:
  """add, subtract: of constants, or a loop element plus a step."""
  op = ins.opcode
  a = _sym(module, comp, ins.operands[0], env)
  b = _sym(module, comp, ins.operands[1], env)
  if a and b and a[0] == "c" and b[0] == "c":
    return ("c", a[1] + b[1] if op == "add" else a[1] - b[1])
  if a and a[0] == "iv" and b and b[0] in ("c", "iv"):
    return ("iv+", a[1], b if op == "add" else _neg(b))
  if op == "add" and b and b[0] == "iv" and a and a[0] in ("c", "iv"):
    return ("iv+", b[1], a)
  return None


def _sym_fusion(module: Module, comp: Computation, ins: Instr, env: Env) -> Sym:
  called = module.computations[ins.called("calls")[0]]
  sub_env = {i: _sym(module, comp, o, env) for i, o in enumerate(ins.operands)}
  return _sym(module, called, called.root.name, sub_env)


_SYM_RULES: dict[str, _Rule] = {
    "constant": _sym_constant, "parameter": _sym_parameter,
    "get-tuple-element": _sym_element, "maximum": _sym_fold, "minimum": _sym_fold,
    "clamp": _sym_fold, "add": _sym_add, "subtract": _sym_add, "fusion": _sym_fusion,
}


def _neg(s: tuple[Any, ...]) -> Sym:
  return ("c", -s[1]) if s[0] == "c" else None


def _find_compare(module: Module, comp: Computation, name: str,
                  env: Env) -> tuple[str, Sym, Sym] | None:
  """(direction, lhs term, rhs term) of the compare that computes ``name``."""
  ins = comp.by_name.get(name)
  if ins is None:
    return None
  if ins.opcode == "compare":
    return ((ins.text("direction") or "").upper(),
            _sym(module, comp, ins.operands[0], env), _sym(module, comp, ins.operands[1], env))
  if ins.opcode == "fusion":
    called = module.computations[ins.called("calls")[0]]
    sub_env = {i: _sym(module, comp, o, env) for i, o in enumerate(ins.operands)}
    return _find_compare(module, called, called.root.name, sub_env)
  if ins.opcode in _PASS:
    return _find_compare(module, comp, ins.operands[0], env)
  return None
