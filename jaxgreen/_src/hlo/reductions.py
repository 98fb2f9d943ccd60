"""FPO rules for operations that apply a reducer computation: ``reduce`` (argmax and
argmin included), ``reduce-window``, ``select-and-scatter``, ``scatter``, ``map``,
all-reduce and reduce-scatter, ``sort``, top-k and CHLO's ``scan``.

Each walks its reducer once and scales it by the applications, as the jaxpr rules do
(:mod:`jaxgreen._src.formulas`): a reduction of n elements to one is n - 1 applications, a
prefix window (cumsum & co.) is a scan, a sort counts the compares of the keys its
comparator reads, top-k is heap selection. XLA's replay follows XLA's own rules, and
the difference goes under OTHER (or COLLECTIVE, INTEGER).

Example:
  >>> t = Tally()
  >>> t.leaf("add", "", 3, adds=3)
  >>> reduce_name_of(t)
  'reduce_sum'
"""

from __future__ import annotations

import math

from jaxgreen._src.cost import Counts
from jaxgreen._src.formulas import (
  reduce_steps,
  scan_steps,
  sort_compares,
  top_k_compares,
  window_reduce_steps,
)
from jaxgreen._src.hlo.ir import Computation, Instr, Module, as_int
from jaxgreen._src.hlo.pricing import CounterBase
from jaxgreen._src.hlo.tally import Tally, recounted, reduce_op, renamed
from jaxgreen._src.hlo.xla import COLLECTIVE, CUSTOM, INTEGER, OTHER, sort_flops

_PASS_VALUE = frozenset({"bitcast", "convert", "copy", "reshape"})


class ReductionRules(CounterBase):
  """Counts operations that apply a reducer computation."""

  def reduce(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    src = comp.operand(ins, 0)
    out = ins.out
    if src is None or src.out is None or out is None:
      t.note_uncounted("reduce")
      return
    n = reduce_steps(src.out.size, out.size)
    body_name = ins.called("to_apply")[0]
    body = self.sub(body_name, op_name)
    arg = _arg_reduce(self.m, ins, body_name)
    if arg is None:
      t.merge(renamed(body, reduce_name_of(body)), n, n)
      return
    # argmax/argmin (a value and an index reduced together, picked by comparing the
    # values): one compare per step, as the jaxpr primitive; the NaN and tie checks
    # and the index bookkeeping of the lowering are not counted. XLA's replay is kept.
    sub = Tally()
    sub.merge(body, n, n)
    a, m = self.model.price("max" if arg == "argmax" else "min") or (0, 0)
    b = self.bytes_of(comp, ins)
    c = (Counts(a * n, m * n, 0, 0, b) if src.out.is_float
         else Counts(0, 0, 0, (a + m) * n, b))
    t.merge(recounted(sub, arg, self.scope(op_name), c, OTHER))

  def reduce_window(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    out = ins.out
    win = ins.window()
    if out is None:
      return
    taps = math.prod(d.size for d in win) if win else 1
    src = comp.operand(ins, 0)
    xla_n = out.size * (taps - 1)
    # Ours: taps - 1 per output, except a prefix window (cumsum & co.), counted as a
    # scan (n - 1 per row), as at the jaxpr stage (formulas.window_reduce_steps).
    ours_n = xla_n
    if src is not None and src.out is not None and win:
      ours_n = window_reduce_steps(
          src.out.dims, out.size, [d.size for d in win], [d.stride for d in win],
          [(d.lo, d.hi) for d in win], [d.base for d in win], [d.dil for d in win])
    # HloCostAnalysis::HandleReduceWindow: a window that is a reduce broadcast back over
    # one dimension (cumulative sums lowered this way) is priced as a reduce.
    reducing = [i for i, d in enumerate(win) if d.size != 1]
    padded = [d for d in win if d.lo or d.hi]
    if len(reducing) == 1 and len(padded) == 1 and len(ins.arrays) == 1:
      for i, d in enumerate(win):
        if (d.size != 1 and d.lo and d.hi and d.lo == d.hi and d.size == 2 * d.lo + 1
            and d.lo == out.dims[i] - 1):
          w = out.dims[i]
          xla_n = out.size // w + (w - 1)
    body = self.sub(ins.called("to_apply")[0], op_name)
    sub = Tally()
    sub.merge(body, ours_n, xla_n)
    # Ours-with-trips follows ours; the XLA-count difference is a counting convention.
    diff = body.xla_flops * (ours_n - xla_n)
    sub.xla_flops_trips -= diff
    sub.cause(OTHER, diff)
    name = {"add": "reduce_window_sum", "max": "reduce_window_max",
            "min": "reduce_window_min"}.get(reduce_op(body), "reduce_window")
    t.merge(renamed(sub, name))

  def select_and_scatter(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    source = comp.operand(ins, 1)
    win = ins.window()
    if source is None or source.out is None:
      return
    taps = math.prod(d.size for d in win) if win else 1
    n = source.out.size
    sel = self.sub(ins.called("select")[0], op_name)
    sca = self.sub(ins.called("scatter")[0], op_name)
    t.merge(renamed(sel, "select_and_scatter_add"), n * (taps - 1), n * (taps - 1))
    t.merge(renamed(sca, "select_and_scatter_add"), n, n)

  def map(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    body = self.sub(ins.called("to_apply")[0], op_name)
    t.merge(body, ins.out.size if ins.out else 0, ins.out.size if ins.out else 0)

  def scatter(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    upd = comp.operand(ins, len(ins.operands) - 1)
    n = upd.out.size if upd is not None and upd.out else 0
    body = self.sub(ins.called("to_apply")[0], op_name)
    t.merge(body, n, n)

  def all_reduce(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    groups = ins.group_size(self.m.devices)
    body_name = ins.called("to_apply")
    body = self.sub(body_name[0], op_name) if body_name else Tally()
    elems = sum(a.size for a in self.operand_arrays(comp, ins))
    out_elems = sum(a.size for a in ins.arrays)
    # jaxgreen, as for psum: each device does (n - 1) / n of the reduction of its
    # elements (reduce-scatter + all-gather); XLA: one flop per output element.
    per_dev = elems * (groups - 1) / groups if groups > 1 else 0
    a = body.total.adds * per_dev
    m = body.total.muls * per_dev
    xla = 0 if ins.opcode.startswith("reduce-scatter") else out_elems
    prim = {"maximum": "pmax", "minimum": "pmin"}.get(reduce_op(body), "psum")
    t.leaf(prim, self.scope(op_name), xla, 0, {COLLECTIVE: a + m - xla}, adds=as_int(a),
           muls=as_int(m), nbytes=self.bytes_of(comp, ins))

  def sort(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    key = comp.operand(ins, 0)
    if key is None or key.out is None:
      return
    dims = ins.int_list("dimensions")
    d = dims[0] if dims else len(key.out.dims) - 1
    n = key.out.dims[d] if key.out.dims else 1
    # As the jaxpr's num_keys: the operands whose parameters the comparator reads.
    keys = _sort_keys(self.m, comp, ins)
    compares = sort_compares(key.out.size, n, len(keys))
    xla = sort_flops(key.out.size)
    a, m = self.model.price("lt") or (0, 0)
    b = self.bytes_of(comp, ins)
    scope = self.scope(op_name)
    if any(o.out is not None and o.out.is_float
           for o in (comp.operand(ins, i) for i in keys) if o is not None):
      t.leaf("sort", scope, xla, 0, {OTHER: (a + m) * compares - xla}, adds=a * compares,
             muls=m * compares, nbytes=b)
    else:
      t.leaf("sort", scope, xla, 0, {INTEGER: -xla}, int_ops=compares, nbytes=b)

  def chlo_top_k(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    self.top_k(t, comp, ins, self.scope(op_name))

  def top_k(self, t: Tally, comp: Computation, ins: Instr, scope: str,
            xla: float = 0, prim: str = "top_k") -> None:
    """The top k of each row (``chlo.top_k``, the ``TopK`` custom calls): heap
    selection, ``formulas.top_k_compares`` per row, as the jaxpr ``top_k``."""
    x = comp.operand(ins, 0)
    out = ins.arrays[0] if ins.arrays else None
    if x is None or x.out is None or out is None or len(out.dims) != len(x.out.dims):
      name = ins.opcode if ins.opcode.startswith("chlo.") else prim
      t.note_uncounted(name)
      t.leaf(name, scope, xla, 0, {CUSTOM: -xla})
      return
    dims = x.out.dims
    # The selected axis: the one the result shortens (the last one when k = n).
    axis = next((i for i in range(len(dims) - 1, -1, -1) if out.dims[i] != dims[i]),
                len(dims) - 1)
    n = dims[axis] if dims else 1
    k = out.dims[axis] if out.dims else 1
    compares = x.out.size // max(1, n) * top_k_compares(n, k)
    a, m = self.model.price("lt") or (0, 0)
    b = self.bytes_of(comp, ins)
    if x.out.is_float:
      t.leaf(prim, scope, xla, 0, {OTHER: (a + m) * compares, CUSTOM: -xla}, adds=a * compares,
             muls=m * compares, nbytes=b)
    else:
      t.leaf(prim, scope, xla, 0, {CUSTOM: -xla}, int_ops=compares, nbytes=b)

  def scan(self, t: Tally, comp: Computation, ins: Instr, op_name: str) -> None:
    """A cumulative op as a scan (CHLO's ``scan``): its body combines one slice across
    the rows per step, n - 1 steps along the axis (``formulas.scan_steps`` per row)."""
    x = comp.operand(ins, 0)
    called = ins.called("to_apply")
    if x is None or x.out is None or not called:
      t.note_uncounted(ins.opcode)
      return
    dims = ins.int_list("dimensions")
    d = dims[0] if dims else 0
    n = x.out.dims[d] if d < len(x.out.dims) else 1
    body = self.sub(called[0], op_name)
    steps = scan_steps(n, n)  # the body holds every row: n - 1 applications
    name = {"add": "cumsum", "mul": "cumprod", "max": "cummax",
            "min": "cummin"}.get(reduce_op(body), "cumulative")
    t.merge(renamed(body, name), steps, steps)


def reduce_name_of(body: Tally) -> str:
  """The jaxpr name of a reduction whose reducer is ``body``."""
  return {"add": "reduce_sum", "max": "reduce_max", "min": "reduce_min",
          "mul": "reduce_prod"}.get(reduce_op(body), "reduce")


def _param_index(comp: Computation, name: str) -> int | None:
  """The parameter number ``name`` is (through bitcasts and converts), else None."""
  for _ in range(8):
    ins = comp.by_name.get(name)
    if ins is None:
      return None
    if ins.opcode == "parameter":
      try:
        return int(ins.operands[0])
      except (IndexError, ValueError):
        return None
    if ins.opcode not in _PASS_VALUE or not ins.operands:
      return None
    name = ins.operands[0]
  return None


def _arg_reduce(module: Module, ins: Instr, body_name: str) -> str | None:
  """"argmax"/"argmin" for a reduce of (values, integer indices) whose reducer picks by
  comparing the two values (GT/GE: argmax, LT/LE: argmin, as jax lowers argmax_p and
  argmin_p), else None."""
  arrays = ins.arrays
  if len(arrays) != 2 or len(ins.operands) != 4 or arrays[1].is_float:
    return None
  body = module.computations.get(body_name)
  if body is None:
    return None
  for i in body.instrs:
    if i.opcode != "compare" or len(i.operands) != 2:
      continue
    lhs, rhs = (_param_index(body, o) for o in i.operands)
    if {lhs, rhs} != {0, 2}:  # the values: parameters 0 (accumulated) and 2 (next)
      continue
    d = (i.text("direction") or "").upper()
    greater = d in ("GT", "GE")
    if d not in ("GT", "GE", "LT", "LE"):
      continue
    return "argmax" if greater == (lhs == 0) else "argmin"
  return None


def _is_iota(module: Module, comp: Computation, name: str) -> bool:
  ins = comp.by_name.get(name)
  if ins is None:
    return False
  if ins.opcode == "iota":
    return True
  if ins.opcode == "fusion" and not ins.operands:
    called = module.computations.get((ins.called("calls") or [""])[0])
    return called is not None and called.root.opcode == "iota"
  return False


def _comparator_params(cmp: Computation) -> set[int]:
  """The parameters the result of comparator ``cmp`` depends on."""
  seen: set[str] = set()
  stack = [cmp.root.name]
  params: set[int] = set()
  while stack:
    name = stack.pop()
    if name in seen:
      continue
    seen.add(name)
    i = cmp.by_name.get(name)
    if i is None:
      continue
    if i.opcode == "parameter":
      try:
        params.add(int(i.operands[0]))
      except (IndexError, ValueError):
        pass
      continue
    stack.extend(i.operands)
  return params


def _sort_keys(module: Module, comp: Computation, ins: Instr) -> list[int]:
  """The operands of a sort that are keys: those whose comparator parameters (2i and
  2i + 1) the comparator's result depends on. An iota operand other than the first is
  an index tie-breaker (XLA's stable-sort expander adds one), not a key. At least
  operand 0."""
  called = ins.called("to_apply")
  cmp = module.computations.get(called[0]) if called else None
  if cmp is None:
    return [0]
  params = _comparator_params(cmp)
  keys = sorted({p // 2 for p in params if p // 2 < len(ins.operands)})
  keys = [k for k in keys if k == 0 or not _is_iota(module, comp, ins.operands[k])]
  return keys or [0]
