"""Reading the values of a StableHLO module through jaxlib's MLIR bindings: types,
integer attributes, constants, windows, replica groups, dimension numbers.

These turn MLIR attributes into the typed values that
:class:`~jaxgreen._src.hlo.ir.Instr` holds in ``fields`` (a tuple of
:class:`~jaxgreen._src.hlo.ir.Window`, a list of ints, a group size).

Example:
  >>> type_text("tensor<8x16xf32>"), attr_ints("array<i64: 1, 2>")
  ('f32[8,16]', [1, 2])
  >>> make_window([3, 3], [2, 2], [0, 1, 0, 1], [], [])[0]
  Window(size=3, stride=2, lo=0, hi=1, base=1, dil=1)
  >>> dense_group_size("dense<[[0, 1], [2, 3]]> : tensor<2x2xi64>")
  2
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from jaxgreen._src.hlo.ir import Window

_DTYPE = re.compile(r"^(?:i1|[iu]i?\d+|f\d+|bf16|f8\w+|f4\w+|complex<f(?:32|64)>|index)$")
_INTS = re.compile(r"-?\d+")
_DENSE = re.compile(r"dense<(.*)>\s*:\s*tensor<([^>]*)>")


class MlirAttrs:
  """The attributes of one MLIR operation, read as text (empty when absent)."""

  def __init__(self, o: Any):
    self.a = o.attributes

  def __call__(self, key: str) -> str:
    if key not in self.a:
      return ""
    try:
      return str(self.a[key])
    except TypeError:  # an attribute the bindings cannot cast (complex dense values)
      return ""

  def ints(self, key: str) -> list[int]:
    return attr_ints(self(key))

  def enum(self, key: str, word: str, default: str) -> str:
    """The value of an enum attribute ``#stablehlo<word VALUE>``."""
    m = re.search(word + r"\s+(\w+)", self(key))
    return m.group(1) if m else default


def hlo_dtype(mlir: str) -> str:
  """The HLO element type of an MLIR one: ``i1`` -> ``pred``, ``ui8`` -> ``u8``..."""
  if mlir == "i1":
    return "pred"
  if mlir.startswith("ui"):
    return "u" + mlir[2:]
  if mlir.startswith("i"):
    return "s" + mlir[1:]
  if mlir == "complex<f32>":
    return "c64"
  if mlir == "complex<f64>":
    return "c128"
  return mlir.lower()


def type_text(t: str) -> str:
  """``tensor<8x16xf32>`` -> ``f32[8,16]``; tokens and other types -> ``token[]``."""
  if not t.startswith("tensor<"):
    return "token[]"
  body = t[len("tensor<"):-1]
  depth = 0
  for i, ch in enumerate(body):  # drop an encoding: ", #sdy.sharding<...>" and the like
    depth += (ch == "<") - (ch == ">")
    if ch == "," and depth == 0:
      body = body[:i]
      break
  parts = body.split("x")
  # the element type may itself hold an "x" only in exotic types; take the known suffix
  for i in range(len(parts)):
    rest = "x".join(parts[i:])
    if _DTYPE.match(rest):
      dims = [p if p.isdigit() else "0" for p in parts[:i]]
      return f"{hlo_dtype(rest)}[{','.join(dims)}]"
  return "token[]"


def attr_ints(text: str) -> list[int]:
  """Integers of ``array<i64: 1, 2>``, ``dense<[[1, 1]]> : tensor<1x2xi64>`` (splats
  expanded) or ``3 : i64``; the type's own digits are not values."""
  if text.startswith("array<"):
    return [int(x) for x in _INTS.findall(text.split(":", 1)[1])] if ":" in text else []
  m = _DENSE.match(text)
  if m:
    values = [int(x) for x in _INTS.findall(m.group(1))]
    if "[" not in m.group(1) and len(values) == 1:
      dims = [int(d) for d in m.group(2).split("x")[:-1] if d.isdigit()]
      n = 1
      for d in dims:
        n *= d
      return values * n
    return values
  return [int(x) for x in _INTS.findall(text.split(" : ", 1)[0])]


def make_window(sizes: Sequence[int], strides: Sequence[int], pads: Sequence[int],
                lhs_dil: Sequence[int], rhs_dil: Sequence[int]) -> tuple[Window, ...]:
  """The window of a convolution or reduce-window from its StableHLO attributes
  (``padding`` flattened as lo, hi per dimension; a missing attribute is its default)."""
  n = len(sizes)

  def dims(vals: Sequence[int]) -> list[int]:
    return list(vals)[:n] or [1] * n

  pad_pairs = ([(pads[2 * i], pads[2 * i + 1]) for i in range(n)] if len(pads) >= 2 * n
               else [(0, 0)] * n)
  st, lhs, rhs = dims(strides), dims(lhs_dil), dims(rhs_dil)
  return tuple(Window(sizes[i], st[i], pad_pairs[i][0], pad_pairs[i][1], lhs[i], rhs[i])
               for i in range(n))


def dense_group_size(text: str) -> int | None:
  """Devices per group of a ``dense<[[0, 1], [2, 3]]>`` replica-groups attribute; None
  for an empty list (every device)."""
  m = re.search(r"dense<(.*?)>\s*:", text)
  if not m or not m.group(1).strip():
    return None
  first = re.search(r"\[([\d,\s]+)\]", m.group(1))
  if first is None:
    return None
  return len([s for s in first.group(1).split(",") if s.strip()])


def constant_value(o: Any) -> str:
  """The value text of a scalar or splat ``stablehlo.constant`` (``5``, ``1.0``,
  ``(1.0,2.0)`` for a complex one), else ``""``: only such values are read (loop
  bounds, branch indices).

  The ``value`` attribute is printed only when it is one value (a scalar or a splat):
  a large constant would print every element. The MLIR bindings cannot cast a complex
  dense attribute (TypeError); its value is read from the operation's text then, which
  is slower (it prints the whole module's context), so only there.
  """
  from jaxlib.mlir import ir

  try:
    attr = o.attributes["value"]
    try:
      dense = ir.DenseElementsAttr(attr)
      if not dense.is_splat and ir.ShapedType(attr.type).rank > 0:
        return ""
      text = str(attr)
    except TypeError:
      text = o.get_asm(large_elements_limit=16)
  except Exception:  # noqa: BLE001 - a value we cannot read is simply not known
    return ""
  m = re.search(r"dense<(.*)>\s*:", text)
  return m.group(1).strip() if m and "[" not in m.group(1) else ""


_RAGGED_DNUMS = {"lhs_batching_dimensions": "lhs_batch_dims",
                 "rhs_batching_dimensions": "rhs_batch_dims",
                 "lhs_contracting_dimensions": "lhs_contracting_dims",
                 "rhs_contracting_dimensions": "rhs_contracting_dims",
                 "lhs_ragged_dimensions": "lhs_ragged_dims",
                 "rhs_group_dimensions": "rhs_group_dims"}


def ragged_dot_fields(text: str) -> dict[str, list[int]]:
  """The dimension lists of a ``#chlo.ragged_dot<...>`` (or ``#mhlo.ragged_dot<...>``)
  attribute, under the names of XLA's ``ragged-dot`` attributes."""
  out = {}
  for key, hlo in _RAGGED_DNUMS.items():
    m = re.search(key + r"\s*=\s*\[([\d,\s]*)\]", text)
    if m:
      out[hlo] = [int(d) for d in re.findall(r"\d+", m.group(1))]
  return out


def conv_labels(dimension_numbers: str) -> tuple[str, str, str] | None:
  """(input, kernel, output) dimension labels of a convolution's ``dimension_numbers``
  (``[b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f]``), else None."""
  m = re.search(r"\[([^\]]*)\]x\[([^\]]*)\]->\[([^\]]*)\]", dimension_numbers)
  if not m:
    return None
  lhs, rhs, out = (x.replace(", ", "").replace(",", "") for x in m.groups())
  return lhs, rhs, out
