"""The HLO program as counting sees it: arrays, instructions, computations, modules.

Both stages build these objects: :mod:`jaxgreen._src.hlo.parse` from HLO text (attributes
kept as their raw text, read on demand) and :mod:`jaxgreen._src.hlo.stablehlo` from the MLIR
module (attributes given as typed values in :attr:`Instr.fields`). Counting reads
attributes only through the typed accessors of :class:`Instr` (:meth:`Instr.called`,
:meth:`Instr.int_list`, :meth:`Instr.window`, :meth:`Instr.text` ...), which look at
``fields`` first and parse the text otherwise, so it does not matter which stage built
an instruction.

Example:
  >>> a = Array("f32", (8, 16))
  >>> a.size, a.nbytes, a.is_float
  (128, 512, True)
  >>> parse_window("{size=3x3 stride=2x2 pad=0_1x0_1}")[0]
  Window(size=3, stride=2, lo=0, hi=1, base=1, dil=1)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from typing import Any

# Element types that are floating point (FPO) in HLO; everything else is integer/bool.
FLOAT_TYPES = frozenset({
    "f16", "bf16", "f32", "f64", "c64", "c128", "f8e4m3fn", "f8e5m2", "f8e4m3fnuz",
    "f8e5m2fnuz", "f8e4m3b11fnuz", "f8e4m3", "f8e3m4", "f4e2m1fn", "f8e8m0fnu",
})
_BITS = {"pred": 8, "s1": 1, "u1": 1, "s2": 2, "u2": 2, "s4": 4, "u4": 4, "s8": 8, "u8": 8,
         "s16": 16, "u16": 16, "s32": 32, "u32": 32, "s64": 64, "u64": 64, "f16": 16,
         "bf16": 16, "f32": 32, "f64": 64, "c64": 64, "c128": 128, "token": 0,
         "f4e2m1fn": 4, "f8e4m3fn": 8, "f8e5m2": 8, "f8e4m3fnuz": 8, "f8e5m2fnuz": 8,
         "f8e4m3b11fnuz": 8, "f8e4m3": 8, "f8e3m4": 8, "f8e8m0fnu": 8}

# Attributes that name the computations an instruction calls.
CALL_KEYS = ("calls", "to_apply", "body", "condition", "branch_computations",
             "true_computation", "false_computation", "scatter", "select")


class HloParseError(ValueError):
  """HLO text that cannot be counted faithfully: truncated, malformed or cyclic. A count
  of such text would be wrong while looking exact, so it is refused."""

  __module__ = "jaxgreen.hlo"  # its public home, as tracebacks and reprs show it


def as_int(v: Any) -> Any:
  """``v`` as an int where it is a whole float that a float64 holds exactly, else ``v``."""
  if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
    return int(v)
  return v


@dataclasses.dataclass(frozen=True, slots=True)
class Array:
  """One array shape: element type and dimensions."""

  dtype: str
  dims: tuple[int, ...]
  size: int = dataclasses.field(init=False, compare=False)
  nbytes: int = dataclasses.field(init=False, compare=False)

  def __post_init__(self) -> None:
    size = math.prod(self.dims)
    object.__setattr__(self, "size", size)
    object.__setattr__(self, "nbytes", size * _BITS.get(self.dtype, 32) // 8)

  @property
  def is_float(self) -> bool:
    return self.dtype in FLOAT_TYPES

  @property
  def is_complex(self) -> bool:
    return self.dtype in ("c64", "c128")


_ARRAY = re.compile(r"([a-z][a-z0-9]*)\[([^\]]*)\]")
_LAYOUT = re.compile(r"\{[^{}]*\}")


@functools.lru_cache(maxsize=65536)
def _parse_type(text: str) -> tuple[Array, ...]:
  # Layouts such as {1,0:T(8,128)S(1)} hold tile specs that must not be read as arrays.
  out = []
  for m in _ARRAY.finditer(_LAYOUT.sub("", text)):
    dims = tuple(int(d.lstrip("<=")) for d in m.group(2).split(",") if d.strip())
    out.append(Array(m.group(1), dims))
  return tuple(out)


def parse_type(text: str) -> list[Array]:
  """Every array in a (possibly tuple) HLO type, in order; layouts are ignored.

  >>> [(a.dtype, a.dims) for a in parse_type("(f32[2,3]{1,0}, s32[])")]
  [('f32', (2, 3)), ('s32', ())]
  """
  return list(_parse_type(text))


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
  """One dimension of a convolution or reduce-window window."""

  size: int
  stride: int = 1
  lo: int = 0  # edge padding before
  hi: int = 0  # edge padding after
  base: int = 1  # lhs (base) dilation
  dil: int = 1  # rhs (window) dilation


_WINDOW_FIELD = re.compile(r"(\w+)=([\d_x\-]+)")


def parse_window(text: str) -> tuple[Window, ...]:
  """Parses ``{size=3x3 stride=1x1 pad=1_1x1_1 lhs_dilate=1x1 rhs_dilate=1x1}``."""
  fields = dict(_WINDOW_FIELD.findall(text))
  if "size" not in fields:
    return ()
  sizes = [int(s) for s in fields["size"].split("x")]
  n = len(sizes)

  def per_dim(key: str, default: str) -> list[str]:
    if key not in fields:
      return [default] * n
    return fields[key].split("x")

  strides = [int(s) for s in per_dim("stride", "1")]
  pads = [p.split("_") for p in per_dim("pad", "0_0")]
  lhs_d = [int(s) for s in per_dim("lhs_dilate", "1")]
  rhs_d = [int(s) for s in per_dim("rhs_dilate", "1")]
  return tuple(Window(sizes[i], strides[i], int(pads[i][0]), int(pads[i][1]), lhs_d[i],
                      rhs_d[i]) for i in range(n))


@dataclasses.dataclass(slots=True)
class Instr:
  """One HLO instruction.

  ``attrs`` is the raw attribute text of a parsed instruction; ``fields`` holds typed
  attribute values (a called computation list, an int list, a window, a string) set by
  a builder that has them already. The accessors read ``fields`` first.
  """

  name: str
  type_text: str
  opcode: str
  operands: list[str]
  attrs: str
  op_name: str
  root: bool = False
  _arrays: list[Array] | None = None
  fields: dict[str, Any] | None = None

  @property
  def arrays(self) -> list[Array]:
    """The arrays of the result type (one for an array, several for a tuple)."""
    if self._arrays is None:
      self._arrays = parse_type(self.type_text)
    return self._arrays

  @property
  def out(self) -> Array | None:
    """The first array of the result (the result itself unless it is a tuple)."""
    a = self.arrays
    return a[0] if a else None

  def attr(self, key: str) -> str | None:
    """The raw text of attribute ``key`` (``{...}`` and ``"..."`` kept whole)."""
    i = _find_attr(self.attrs, key)
    if i < 0:
      return None
    return _value_at(self.attrs, i)

  def text(self, key: str) -> str | None:
    """Attribute ``key`` as a string, quotes removed (``custom_call_target``...)."""
    if self.fields is not None and key in self.fields:
      return str(self.fields[key])
    v = self.attr(key)
    return v.strip('"') if v is not None else None

  def called(self, key: str) -> list[str]:
    """Computation names referenced by ``key`` (``calls``, ``to_apply``, ``body``...)."""
    if self.fields is not None and key in self.fields:
      return list(self.fields[key])
    v = self.attr(key)
    if not v:
      return []
    return [s.strip().lstrip("%") for s in v.strip("{}").split(",") if s.strip()]

  def int_list(self, key: str) -> list[int]:
    """Every integer of attribute ``key`` (``lhs_contracting_dims={1}``...)."""
    if self.fields is not None and key in self.fields:
      return list(self.fields[key])
    v = self.attr(key)
    if not v:
      return []
    return [int(s) for s in re.findall(r"-?\d+", v)]

  def int_attr(self, key: str, default: int) -> int:
    """Attribute ``key`` as one integer (``feature_group_count=2``), else ``default``."""
    if self.fields is not None and key in self.fields:
      return int(self.fields[key])
    v = self.attr(key)
    try:
      return int(v) if v is not None else default
    except ValueError:
      return default

  def window(self) -> tuple[Window, ...]:
    """The ``window=`` attribute, one :class:`Window` per dimension (empty if none)."""
    if self.fields is not None and "window" in self.fields:
      return tuple(self.fields["window"])
    return parse_window(self.attr("window") or "")

  def group_size(self, all_devices: int) -> int:
    """Devices per replica group of a collective (``replica_groups=``); all of them
    when the groups are empty."""
    if self.fields is not None and "replica_group_size" in self.fields:
      n = self.fields["replica_group_size"]
      return all_devices if n is None else int(n)
    return group_size(self.attr("replica_groups"), all_devices)

  def backend_config(self) -> dict[str, Any]:
    """The JSON ``backend_config`` (GPU, TPU) as a dict; ``{}`` when absent or not JSON."""
    if self.fields is not None and "backend_config" in self.fields:
      return dict(self.fields["backend_config"])
    v = self.attr("backend_config")
    if not v:
      return {}
    try:
      out = json.loads(v)
    except ValueError:
      return {}
    return out if isinstance(out, dict) else {}


def _find_attr(attrs: str, key: str) -> int:
  start = 0
  needle = key + "="
  while True:
    i = attrs.find(needle, start)
    if i < 0:
      return -1
    if i == 0 or attrs[i - 1] in " ,":
      return i + len(needle)
    start = i + 1


def _value_at(s: str, i: int) -> str:
  depth, j, quote = 0, i, False
  while j < len(s):
    ch = s[j]
    if quote:
      if ch == "\\":
        j += 1
      elif ch == '"':
        quote = False
    elif ch == '"':
      quote = True
    elif ch in "{([":
      depth += 1
    elif ch in "})]":
      depth -= 1
      if depth < 0:
        break
    elif ch == "," and depth == 0:
      break
    j += 1
  return s[i:j].strip()


@dataclasses.dataclass
class Computation:
  """A named list of instructions; the ``root`` one is its result."""

  name: str
  instrs: list[Instr]
  entry: bool = False

  def __post_init__(self) -> None:
    self.by_name = {i.name: i for i in self.instrs}

  @property
  def root(self) -> Instr:
    for i in self.instrs:
      if i.root:
        return i
    return self.instrs[-1]

  def operand(self, ins: Instr, i: int) -> Instr | None:
    """The instruction that defines operand ``i`` of ``ins``, if it is in this computation."""
    if i >= len(ins.operands):
      return None
    return self.by_name.get(ins.operands[i])


@dataclasses.dataclass
class Module:
  """Computations by name, the entry one, and the devices the module runs on."""

  computations: dict[str, Computation]
  entry: str
  devices: int = 1  # num_partitions x replica_count from the module header

  @property
  def entry_computation(self) -> Computation:
    return self.computations[self.entry]


_IOTA = re.compile(r"^\[(\d+),(\d+)\]<=")
_MESH = re.compile(r"^mesh\[([^\]]*)\]\s*\{([^}]*)\}")


def group_size(replica_groups: str | None, all_devices: int) -> int:
  """Devices per replica group, from an HLO ``replica_groups=`` attribute.

  Understands the explicit list (``{{0,1},{2,3}}``), the iota form (``[2,2]<=[4]``),
  the named-mesh form TPU emits (``mesh['x'=2,'y'=2] {'y'}``) and the empty list (all
  devices).

  >>> group_size("{{0,1},{2,3}}", 4), group_size("[2,2]<=[4]", 4), group_size("{}", 4)
  (2, 2, 4)
  """
  v = (replica_groups or "").strip()
  if not v or v == "{}" or v == "{{}}":
    return all_devices
  m = _IOTA.match(v)
  if m:
    return int(m.group(2))
  m = _MESH.match(v)
  if m:
    return _mesh_group(m.group(1), m.group(2))
  first = re.search(r"\{([\d,\s]+)\}", v[1:] if v.startswith("{{") else v)
  if first:
    return len([s for s in first.group(1).split(",") if s.strip()])
  return all_devices


def _mesh_group(axes: str, chosen: str) -> int:
  sizes = {k.strip().strip("'\""): int(s) for k, s in re.findall(r"([^,=]+)=(\d+)", axes)}
  n = 1
  for tok in chosen.split(","):
    tok = tok.strip()
    if not tok:
      continue
    sub = re.match(r"^'?([^':]+)'?:\((\d+)\)(\d+)$", tok)  # a sub-axis 'x':(k)m
    if sub:
      n *= int(sub.group(3))
    else:
      n *= sizes.get(tok.strip("'\""), 1)
  return n
