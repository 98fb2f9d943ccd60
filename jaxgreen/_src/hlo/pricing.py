"""The base of the FPO count of an HLO module: state, scopes, and elementwise pricing.

:class:`CounterBase` is the :class:`~jaxgreen._src.hlo.walk.Walk` with a
:class:`~jaxgreen._src.hlo.tally.Tally` per computation, visiting instructions in XLA's
order (:func:`jaxgreen._src.hlo.xla.xla_order`) so that XLA's float32 sums are replayed.
The rules for each opcode family build on it (:mod:`~jaxgreen._src.hlo.dense`,
:mod:`~jaxgreen._src.hlo.reductions`, :mod:`~jaxgreen._src.hlo.special`) and
:mod:`jaxgreen._src.hlo.count` puts them together in one opcode table.

:data:`ELEMENTWISE` is the one table of elementwise opcodes of both stages: HLO opcode
(or ``chlo.<op>`` of a lowered module) -> the jaxpr primitive whose CostModel price
and :mod:`jaxgreen._src.formulas` rules apply.

Example:
  >>> ELEMENTWISE["exponential"], ELEMENTWISE["chlo.erf_inv"]
  ('exp', 'erf_inv')
  >>> hlo_scope("jit(f)/mlp/while/body/dense/dot_general")
  'mlp/dense'
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping

from jaxgreen._src._scope import clean_scope
from jaxgreen._src.cost_model import TRANSCENDENTALS, CostModel
from jaxgreen._src.formulas import ZERO_ELEMENTWISE, elementwise_price
from jaxgreen._src.hlo.ir import Array, Computation, Instr, Module
from jaxgreen._src.hlo.tally import Tally
from jaxgreen._src.hlo.walk import Walk
from jaxgreen._src.hlo.xla import INTEGER, PRICING, TRANSC, XLA_TRANSCENDENTAL, xla_order

# Opcode -> jaxpr primitive name (the CostModel's key) for elementwise opcodes: HLO's
# and, prefixed "chlo.", the CHLO operations of a lowered module (XLA expands those
# later). Adding an elementwise operation is one line here per stage's name.
ELEMENTWISE: Mapping[str, str] = {
    "add": "add", "subtract": "sub", "multiply": "mul", "divide": "div",
    "remainder": "rem", "maximum": "max", "minimum": "min", "power": "pow",
    "atan2": "atan2", "negate": "neg", "abs": "abs", "sign": "sign", "floor": "floor",
    "ceil": "ceil", "round-nearest-afz": "round", "round-nearest-even": "round",
    "exponential": "exp", "exponential-minus-one": "expm1", "log": "log",
    "log-plus-one": "log1p", "logistic": "logistic", "tanh": "tanh", "sqrt": "sqrt",
    "rsqrt": "rsqrt", "cbrt": "cbrt", "sine": "sin", "cosine": "cos", "tan": "tan",
    "erf": "erf", "is-finite": "is_finite", "clamp": "clamp", "select": "select_n",
    "reduce-precision": "reduce_precision", "convert": "convert_element_type",
    "stochastic-convert": "convert_element_type", "real": "real", "imag": "imag",
    "complex": "complex", "not": "not", "and": "and", "or": "or", "xor": "xor",
    "shift-left": "shift_left", "shift-right-logical": "shift_right_logical",
    "shift-right-arithmetic": "shift_right_arithmetic", "popcnt": "population_count",
    "count-leading-zeros": "clz", "compare": "compare",
    "bitcast-convert": "bitcast_convert_type",
    "exponential2": "exp2", "exp2": "exp2", "fma": "fma",  # XLA with jax >= 0.12.1
    # CHLO (lowered StableHLO only)
    "chlo.erf": "erf", "chlo.erfc": "erfc", "chlo.erf_inv": "erf_inv",
    "chlo.lgamma": "lgamma", "chlo.digamma": "digamma", "chlo.polygamma": "polygamma",
    "chlo.zeta": "zeta", "chlo.sinh": "sinh", "chlo.cosh": "cosh", "chlo.tan": "tan",
    "chlo.asin": "asin", "chlo.acos": "acos", "chlo.atan": "atan", "chlo.asinh": "asinh",
    "chlo.acosh": "acosh", "chlo.atanh": "atanh", "chlo.bessel_i1e": "bessel_i1e",
    "chlo.next_after": "nextafter", "chlo.square": "square", "chlo.conj": "conj",
    "chlo.is_inf": "is_finite", "chlo.is_neg_inf": "is_finite",
    "chlo.is_pos_inf": "is_finite",
}
# Elementwise operations that move or reinterpret data: zero in jaxgreen (as in the
# jaxpr counter's ZERO_COST list); XLA still counts one flop per element for them.
_ZERO_ELEMENTWISE = frozenset({"convert_element_type", "bitcast_convert_type"}) | ZERO_ELEMENTWISE
_INT_PRIM = frozenset({"not", "and", "or", "xor", "shift_left", "shift_right_logical",
                       "shift_right_arithmetic", "population_count", "clz"})
# Opcodes that do no arithmetic in either count (reviewed list: data movement, layout,
# control, communication without reduction). Anything else unknown is uncounted.
ZERO_OPCODES = frozenset({
    "parameter", "constant", "get-tuple-element", "tuple", "bitcast",
    "broadcast", "reshape", "dynamic-reshape", "transpose", "copy", "copy-start",
    "copy-done", "slice", "dynamic-slice", "dynamic-update-slice", "concatenate", "pad",
    "iota", "gather", "reverse", "after-all", "add-dependency", "partition-id",
    "replica-id", "opt-barrier", "optimization-barrier", "get-dimension-size",
    "set-dimension-size", "send", "send-done", "recv", "recv-done", "infeed", "outfeed",
    "all-gather", "all-gather-start", "all-gather-done", "all-to-all",
    "collective-permute", "collective-permute-start", "collective-permute-done",
    "all-reduce-done", "async-update", "async-done", "domain", "rng-get-and-update-state",
    "collective-broadcast", "ragged-all-to-all",
    "reduce-scatter-done", "all-to-all-start", "all-to-all-done",
    "slice-start", "slice-done", "async-start-done",
})

# -- scopes ---------------------------------------------------------------------------

_LOOP_SEGMENTS = re.compile(r"(?:^|/)(?:while/(?:body|cond)|cond/branch_\d+_fun|"
                            r"closed_call|checkpoint|remat|rematted_computation|"
                            r"core_call|custom_jvp_call|custom_vjp_call|shard_map)(?=/|$)")


def hlo_scope(op_name: str) -> str:
  """The jaxgreen scope of an HLO ``op_name``: the module path, as the jaxpr count keys it.

  The last segment (the primitive) is dropped, and the segments that lowering adds but
  a jaxpr name stack does not have (``while/body``, ``closed_call``, ``checkpoint``...)
  are removed before :func:`jaxgreen._src._scope.clean_scope`.
  """
  if not op_name:
    return ""
  op_name = op_name.split(";", 1)[0]
  cut = _last_slash(op_name)
  if cut < 0:
    return ""
  path = _LOOP_SEGMENTS.sub("", op_name[:cut])
  return clean_scope(path.strip("/"))


def _last_slash(s: str) -> int:
  depth = 0
  for i in range(len(s) - 1, -1, -1):
    ch = s[i]
    if ch == ")":
      depth += 1
    elif ch == "(":
      depth -= 1
    elif ch == "/" and depth == 0:
      return i
  return -1


class CounterBase(Walk[Tally]):
  """The walk with a :class:`Tally` per computation; the context is the ``op_name`` of
  the instruction that runs the computation (inherited by instructions without one)."""

  def __init__(self, module: Module, cost_model: CostModel, cond: str):
    super().__init__(module)
    self.model = cost_model
    self.cond = cond
    self.scopes: dict[str, str] = {}
    # (groups, outputs) inside a TPU fusion that runs a ragged dot as a convolution
    self.ragged: tuple[int, int] | None = None

  def new(self) -> Tally:
    return Tally()

  def merge(self, acc: Tally, sub: Tally, k: int = 1) -> None:
    acc.merge(sub, k, k)

  def missing(self, name: str) -> Tally:
    t = Tally()
    t.uncounted[f"computation {name}"] = 1
    return t

  def order(self, comp: Computation) -> list[Instr]:
    return xla_order(comp)

  def after(self, acc: Tally) -> None:
    acc.flush()

  def sub(self, name: str, op_name: str) -> Tally:
    """The tally of computation ``name`` run by an instruction of ``op_name``."""
    return self.walk(name, op_name)

  def scope(self, op_name: Hashable) -> str:
    key = str(op_name)
    s = self.scopes.get(key)
    if s is None:
      s = self.scopes[key] = hlo_scope(key)
    return s

  @staticmethod
  def operand_arrays(comp: Computation, ins: Instr) -> list[Array]:
    out = []
    for name in ins.operands:
      src = comp.by_name.get(name)
      if src is not None:
        out.extend(src.arrays)
    return out

  def bytes_of(self, comp: Computation, ins: Instr) -> int:
    return (sum(a.nbytes for a in self.operand_arrays(comp, ins))
            + sum(a.nbytes for a in ins.arrays))

  def elementwise(self, t: Tally, comp: Computation, ins: Instr, prim: str,
                  scope: str) -> None:
    """An elementwise operation priced as jaxpr primitive ``prim`` (integer operands as
    integer ops, complex ones by :func:`jaxgreen._src.formulas.complex_price`)."""
    out = ins.out
    n = out.size if out else 0
    ops_in = self.operand_arrays(comp, ins)
    if ins.opcode == "compare":
      prim = (ins.text("direction") or "EQ").lower()
    is_float = any(a.is_float for a in ops_in) if ops_in else bool(out and out.is_float)
    xla_tr = n if ins.opcode in XLA_TRANSCENDENTAL else 0
    xla = 0 if xla_tr else n
    b = self.bytes_of(comp, ins)
    if prim in _ZERO_ELEMENTWISE:
      t.leaf(prim, scope, xla, xla_tr, {PRICING if is_float else INTEGER: -xla}, nbytes=b)
      return
    if prim in _INT_PRIM or not is_float:
      price = self.model.price(prim) or (1, 0)
      iops = (price[0] + price[1]) * n if prim not in _INT_PRIM else n
      if prim == "select_n":
        iops = 0
      t.leaf(prim, scope, xla, xla_tr, {INTEGER: -xla}, int_ops=iops, nbytes=b)
      return
    # The jaxpr rules' price, complex operands included (formulas.complex_price).
    cprice = elementwise_price(self.model, prim, any(x.is_complex for x in ops_in))
    if cprice is None:
      t.note_uncounted(prim)
      t.leaf(prim, scope, xla, xla_tr, {PRICING: -xla})
      return
    a, m = cprice
    tr = n if prim in TRANSCENDENTALS else 0
    ours = (a + m) * n
    cause = TRANSC if ins.opcode in XLA_TRANSCENDENTAL else PRICING
    t.leaf(prim, scope, xla, xla_tr, {cause: ours - xla}, adds=a * n, muls=m * n,
           transcendentals=tr, nbytes=b)
