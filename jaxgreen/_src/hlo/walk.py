"""The one traversal of an HLO module that every HLO reading shares.

:class:`Walk` visits a computation's instructions, memoizes each computation's result
per context, and routes the instructions that run other computations (``fusion``,
``call``/``async-start``, ``while``, ``conditional``) to one hook each, with the loop's
trip count (:func:`jaxgreen._src.hlo.trips.trip_count`) and the branches already walked;
every other instruction goes to :meth:`Walk.leaf`. A reading subclasses it with its own
accumulator: the FPO count and XLA replay (:class:`jaxgreen._src.hlo.count.Counter`) and the
HBM traffic and collectives of a pod (:class:`jaxgreen._src.hlo.traffic.TrafficWalk`).

Example:
  >>> from jaxgreen._src.hlo.parse import parse_module
  >>> class Opcodes(Walk[list]):
  ...   def new(self): return []
  ...   def merge(self, acc, sub, k=1): acc.extend(sub * k)
  ...   def leaf(self, acc, comp, ins, ctx): acc.append(ins.opcode)
  >>> m = parse_module('''HloModule m
  ... ENTRY %main (p: f32[4]) -> f32[4] {
  ...   %p = f32[4]{0} parameter(0)
  ...   ROOT %n = f32[4]{0} negate(f32[4]{0} %p)
  ... }''')
  >>> Opcodes(m).walk(m.entry, None)
  ['parameter', 'negate']
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from jaxgreen._src.formulas import loop_factors
from jaxgreen._src.hlo.ir import Computation, Instr, Module
from jaxgreen._src.hlo.trips import trip_count

T = TypeVar("T")


class Walk(Generic[T]):
  """A memoized walk of ``module`` accumulating a ``T`` per computation and context.

  Subclasses define :meth:`new`, :meth:`merge` and :meth:`leaf`; the hooks for
  computations that run others default to merging what they run (a while body x trips,
  its condition x (trips + 1), as :func:`jaxgreen._src.formulas.loop_factors`).
  """

  def __init__(self, module: Module):
    self.m = module
    self.memo: dict[tuple[str, Hashable], T] = {}

  # -- what a reading defines ---------------------------------------------------------

  def new(self) -> T:
    """An empty accumulator."""
    raise NotImplementedError

  def merge(self, acc: T, sub: T, k: int = 1) -> None:
    """Adds ``sub`` run ``k`` times to ``acc``."""
    raise NotImplementedError

  def leaf(self, acc: T, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    """One instruction that runs no other computation."""
    raise NotImplementedError

  def order(self, comp: Computation) -> list[Instr]:
    """The instructions of ``comp`` in visiting order (default: as written)."""
    return comp.instrs

  def after(self, acc: T) -> None:
    """Called after each instruction."""

  def missing(self, name: str) -> T:
    """The result for a computation that is not in the module."""
    return self.new()

  # -- the traversal --------------------------------------------------------------------

  def walk(self, name: str, ctx: Hashable) -> T:
    """The accumulated result of computation ``name`` in context ``ctx``, memoized."""
    key = (name, ctx)
    hit = self.memo.get(key)
    if hit is not None:
      return hit
    comp = self.m.computations.get(name)
    if comp is None:
      acc = self.memo[key] = self.missing(name)
      return acc
    acc = self.new()
    for ins in self.order(comp):
      self.visit(acc, comp, ins, ctx)
      self.after(acc)
    self.memo[key] = acc
    return acc

  def visit(self, acc: T, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    """Routes one instruction to its hook."""
    op = ins.opcode
    if op == "fusion":
      self.fusion(acc, comp, ins, ctx)
    elif op == "call" or op == "async-start":
      self.call(acc, comp, ins, ctx)
    elif op == "while":
      self.while_(acc, comp, ins, ctx)
    elif op == "conditional":
      self.conditional(acc, comp, ins, ctx)
    else:
      self.leaf(acc, comp, ins, ctx)

  # -- computations that run others -------------------------------------------------------

  def fusion(self, acc: T, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    for c in ins.called("calls")[:1]:
      self.merge(acc, self.walk(c, ctx))

  def call(self, acc: T, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    for c in callees(ins):
      self.merge(acc, self.walk(c, ctx))

  def while_(self, acc: T, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    body, cond, trips, _how = self.loop(comp, ins, ctx)
    k_body, k_cond = loop_factors(trips)
    self.merge(acc, body, k_body)
    self.merge(acc, cond, k_cond)

  def conditional(self, acc: T, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    raise NotImplementedError

  # -- helpers for the hooks ----------------------------------------------------------

  def loop(self, comp: Computation, ins: Instr,
           ctx: Hashable) -> tuple[T, T, int | None, str]:
    """(body, condition, trips, how the trips were found) of while loop ``ins``."""
    trips, how = trip_count(self.m, comp, ins)
    body = self.walk((ins.called("body") or [""])[0], ctx)
    cond = self.walk((ins.called("condition") or [""])[0], ctx)
    return body, cond, trips, how

  def branches(self, ins: Instr, ctx: Hashable) -> list[T]:
    """The walked branches of conditional ``ins`` (index order, or true then false)."""
    return [self.walk(n, ctx) for n in branch_names(ins)]


def callees(ins: Instr) -> list[str]:
  """The computations a ``call`` (``to_apply``) or ``async-start`` (``calls``) runs."""
  return ins.called("to_apply") or ins.called("calls")


def branch_names(ins: Instr) -> list[str]:
  """The branch computations of a conditional."""
  return ins.called("branch_computations") or (
      ins.called("true_computation") + ins.called("false_computation"))
