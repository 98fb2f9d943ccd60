"""The FPO count of an HLO module, compiled or lowered, with XLA's figures replayed.

One table, :data:`RULES`, maps every opcode that does arithmetic to the rule that
counts it; elementwise opcodes are priced through
:data:`jaxgreen._src.hlo.pricing.ELEMENTWISE`, opcodes in
:data:`jaxgreen._src.hlo.pricing.ZERO_OPCODES` do nothing, and anything else is listed in
``Cost.uncounted``. Both stages use this table: an opcode only one of them emits
(``chlo.top_k``, ``chlo.scan`` in a lowered module) is one more entry, not another
walker.

The walk (:class:`~jaxgreen._src.hlo.walk.Walk`) runs fusions and called computations,
multiplies ``while`` bodies by their trip count and takes the ``cond=`` policy's
branch of a ``conditional``; a ``call`` with ``jaxgreen_devices`` (a lowered
``shard_map`` body) is counted once per device of its manual axes.

Example:
  >>> from jaxgreen._src.hlo.parse import parse_module
  >>> m = parse_module('''HloModule m
  ... ENTRY %main (a: f32[8,16], b: f32[16,4]) -> f32[8,4] {
  ...   %a = f32[8,16]{1,0} parameter(0)
  ...   %b = f32[16,4]{1,0} parameter(1)
  ...   ROOT %d = f32[8,4] dot(f32[8,16] %a, f32[16,4] %b), lhs_contracting_dims={1}
  ... }''')
  >>> r = count_module(m)
  >>> r.cost.muls, r.cost.adds, r.xla_flops
  (512, 480, 1024)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping

from jaxgreen._src.cost_model import DEFAULT, CostModel
from jaxgreen._src.formulas import loop_factors, pick_branches
from jaxgreen._src.hlo.ir import Computation, HloParseError, Instr, Module, as_int
from jaxgreen._src.hlo.kernels import KernelTable
from jaxgreen._src.hlo.pricing import ELEMENTWISE, ZERO_OPCODES
from jaxgreen._src.hlo.special import SpecialRules, is_threefry_callee
from jaxgreen._src.hlo.tally import HloCount, LoopInfo, Tally, divided
from jaxgreen._src.hlo.trips import constant_branch
from jaxgreen._src.hlo.walk import branch_names, callees
from jaxgreen._src.hlo.xla import OTHER, PRICING

Rule = Callable[["Counter", Tally, Computation, Instr, str], None]


TOP_LEVEL = "<top level>"  # how notes and trip_counts name the outermost scope


class Counter(SpecialRules):
  """jaxgreen's count and XLA's replay of one module (see the module docstring)."""

  # Trip counts the caller gives for loops the module does not prove (trip_counts=).
  trip_counts: Mapping[str, int] | int | None = None

  def leaf(self, acc: Tally, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    op = ins.opcode
    if op in ZERO_OPCODES:
      return
    op_name = ins.op_name or str(ctx)
    prim = ELEMENTWISE.get(op)
    if prim is not None:
      self.elementwise(acc, comp, ins, prim, self.scope(op_name))
      return
    rule = RULES.get(op)
    if rule is not None:
      rule(self, acc, comp, ins, op_name)
      return
    acc.note_uncounted(op)
    acc.inexact[f"HLO opcode {op!r} has no rule"] = None

  # -- computations that run others -----------------------------------------------------

  def call(self, acc: Tally, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    op_name = ins.op_name or str(ctx)
    devices = ins.int_attr("jaxgreen_devices", 1) if ins.opcode == "call" else 1
    if devices != 1:
      acc.merge(self.sub(ins.called("to_apply")[0], op_name), devices, devices)
      return
    for c in callees(ins):
      if ins.opcode == "call" and is_threefry_callee(c):
        self.threefry(acc, comp, ins, c, op_name)
        continue
      acc.merge(self.sub(c, op_name))

  def fusion(self, acc: Tally, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    op_name = ins.op_name or str(ctx)
    called = ins.called("calls")
    if not called:
      return
    body = self._fusion_body(ins, called[0], op_name)
    # HloCostAnalysis::HandleFusion: a custom fusion holding a gather or scatter is
    # priced as that gather/scatter alone.
    if "kind=kCustom" in ins.attrs or ins.text("kind") == "kCustom":
      fused = self.m.computations.get(called[0])
      special = [i for i in fused.instrs if i.opcode in ("gather", "scatter")] if fused else []
      if fused is not None and special:
        sub = Tally()
        self.visit(sub, fused, special[0], op_name)
        sub.flush()
        acc.merge(body, 1, 1)
        acc.adjust_xla(sub.total32(), sub.xla_flops - body.xla_flops, PRICING)
        return
    acc.merge(body)

  def _fusion_body(self, ins: Instr, called: str, op_name: str) -> Tally:
    ragged = ins.backend_config().get("convolution_algorithm_config") or {}
    if not (ragged.get("is_ragged_dot") and ins.out is not None):
      return self.sub(called, op_name)
    # TPU: a ragged dot as a convolution over every group, masked (DenseRules.conv).
    outer, self.ragged = self.ragged, (int(ragged.get("num_groups_in_ragged_dot") or 1),
                                       ins.out.size)
    try:
      return self.sub(called, op_name)
    finally:
      self.ragged = outer

  def while_(self, acc: Tally, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    op_name = ins.op_name or str(ctx)
    scope = self.scope(op_name)
    body, cnd, trips, how = self.loop(comp, ins, op_name)
    where = scope or TOP_LEVEL
    given = trip_count_given(self.trip_counts, scope) if trips is None else None
    if given is not None:
      trips, how = given, "given"
      acc.assumed[f"while loop at scope {where!r}: {given} trips, as given by "
                  f"trip_counts="] = None
    elif trips is None:
      acc.inexact[f"while loop at scope {where!r} ({ins.name}): trip count unknown, body "
                  f"counted once (pass trip_counts={{{where!r}: n}} to count it exactly)"] = None
    # As at the jaxpr stage: body x trips, condition x (trips + 1); an unknown count is
    # one iteration (body once, condition twice). XLA counts each once.
    k_body, k_cond = loop_factors(trips)
    acc.merge(body, k_body, 1)
    acc.merge(cnd, k_cond, 1)
    acc.loops.append(LoopInfo(scope, trips, how, as_int(body.xla_flops + cnd.xla_flops)))

  def conditional(self, acc: Tally, comp: Computation, ins: Instr, ctx: Hashable) -> None:
    op_name = ins.op_name or str(ctx)
    branches = self.branches(ins, op_name)
    if not branches:
      return
    sub = self._chosen(comp, ins, branches)
    # As the jaxpr rule: uncounted operations and unknown loops of *every* branch are
    # reported, whichever branch is counted.
    sub.uncounted = {}
    for b in branches:
      for key, n in b.uncounted.items():
        sub.uncounted[key] = max(sub.uncounted.get(key, 0), n)
      sub.inexact.update(b.inexact)
    acc.merge(sub)
    # HloCostAnalysis takes the maximum of each property over the branches.
    acc.adjust_xla(max(b.total32() for b in branches),
                   max(b.xla_flops for b in branches) - sub.xla_flops, OTHER)

  def _chosen(self, comp: Computation, ins: Instr, branches: list[Tally]) -> Tally:
    """The branches the ``cond=`` policy counts, summed (divided by their number for
    ``"mean"``); a constant index or predicate selects its branch exactly."""
    fixed = constant_branch(self.m, comp, ins, len(branches))
    if fixed is not None:
      chosen = [(fixed, 1.0)]
    else:
      chosen = pick_branches([(b.total.adds + b.total.muls, b.total.int_ops)
                              for b in branches], self.cond)
    sub = Tally()
    if len(chosen) == 1:
      sub.merge(branches[chosen[0][0]])
      return sub
    for b in branches:  # mean: the sum over the branches divided by their number
      sub.merge(b)
    return divided(sub, len(branches))


# The one opcode table of both stages (elementwise opcodes: pricing.ELEMENTWISE).
RULES: dict[str, Rule] = {
    "dot": Counter.dot,
    "convolution": Counter.convolution,
    "ragged-dot": Counter.ragged_dot,
    "rng-bit-generator": Counter.rng,
    "rng": Counter.rng,
    "reduce": Counter.reduce,
    "reduce-window": Counter.reduce_window,
    "select-and-scatter": Counter.select_and_scatter,
    "map": Counter.map,
    "scatter": Counter.scatter,
    "all-reduce": Counter.all_reduce,
    "all-reduce-start": Counter.all_reduce,
    "reduce-scatter": Counter.all_reduce,
    "reduce-scatter-start": Counter.all_reduce,
    "sort": Counter.sort,
    "custom-call": Counter.custom_call,
    "fft": Counter.fft,
    # lowered StableHLO only
    "chlo.top_k": Counter.chlo_top_k,  # heap selection, as the jaxpr top_k and TopK
    "chlo.scan": Counter.scan,  # n - 1 steps per row, as the jaxpr cumsum & co.
}


def trip_count_given(trip_counts: Mapping[str, int] | int | None, scope: str) -> int | None:
  """The trip count ``trip_counts=`` gives a loop at ``scope`` whose count is not
  proven: one int for every such loop, or by scope (``"<top level>"`` or ``""`` for the
  outermost), as at the jaxpr stage."""
  if trip_counts is None:
    return None
  if isinstance(trip_counts, int):
    return trip_counts
  return trip_counts.get(scope if scope or scope in trip_counts else TOP_LEVEL)


def count_module(module: Module, *, cost_model: CostModel | None = None,
                 cond: str = "max", kernels: KernelTable | None = None,
                 trip_counts: Mapping[str, int] | int | None = None) -> HloCount:
  """Counts the entry computation of an already parsed (or built) module.

  Args:
    module: from :func:`jaxgreen._src.hlo.parse.parse_module` or
      :func:`jaxgreen._src.hlo.stablehlo.lowered_module`.
    cost_model: prices of non-elementary operations; default ``CostModel()``.
    cond: ``"max"`` (default), ``"min"`` or ``"mean"`` for conditionals, as in
      :func:`jaxgreen.count`.
    kernels: the program's Pallas kernels counted at the jaxpr stage.
    trip_counts: trip counts of while loops whose count the module does not prove, by
      scope (as the ``Cost.inexact`` notes name them) or one int for all, as at the
      jaxpr stage (:func:`jaxgreen.count`); noted in ``Cost.assumed``.

  Raises:
    HloParseError: the module's instructions do not fit together.
  """
  if cond not in ("max", "min", "mean"):
    raise ValueError(f"cond={cond!r}: use 'max', 'min' or 'mean'")
  walker = Counter(module, cost_model or DEFAULT, cond)
  walker.kernels = kernels
  walker.trip_counts = trip_counts
  try:
    return walker.walk(module.entry, "").freeze(cond)
  except (IndexError, KeyError, ValueError, TypeError, ZeroDivisionError, AttributeError,
          RecursionError) as e:
    if isinstance(e, HloParseError):
      raise
    # Text that parses but whose instructions do not fit together (an operand index
    # past the operands, a window of the wrong rank, ...): refused, never a raw error.
    raise HloParseError(f"HLO module {module.entry!r} cannot be counted: an instruction "
                        f"does not match its operands ({type(e).__name__}: {e}); pass the "
                        f"unmodified compiled.as_text()") from e


__all__ = ["RULES", "Counter", "count_module", "branch_names"]
