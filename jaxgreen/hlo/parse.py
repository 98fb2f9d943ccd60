"""A small reader of HLO text (``compiled.as_text()``): computations, instructions, shapes.

Only what counting needs is parsed eagerly (name, result type, opcode, operand names,
the raw attribute text and ``metadata={op_name=...}``); attributes are looked up on
demand with :meth:`Instr.attr`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re

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

class HloParseError(ValueError):
  """HLO text that cannot be counted faithfully: truncated, malformed or cyclic. A count
  of such text would be wrong while looking exact, so it is refused."""


# Attributes that name the computations an instruction calls.
CALL_KEYS = ("calls", "to_apply", "body", "condition", "branch_computations",
             "true_computation", "false_computation", "scatter", "select")

_ARRAY = re.compile(r"([a-z][a-z0-9]*)\[([^\]]*)\]")
_HEADER = re.compile(r"^(ENTRY\s+)?%?([^\s(]+)\s*\(")
_INSTR = re.compile(r"^\s*(ROOT\s+)?%?([^\s=]+)\s*=\s*")
_OPCODE = re.compile(r"\s*([a-z][a-z0-9\-_$]*)\(")
_OP_NAME = re.compile(r'op_name="((?:[^"\\]|\\.)*)"')


@dataclasses.dataclass(frozen=True, slots=True)
class Array:
  """One array shape: element type and dimensions."""

  dtype: str
  dims: tuple[int, ...]
  size: int = dataclasses.field(init=False, compare=False)
  nbytes: int = dataclasses.field(init=False, compare=False)

  def __post_init__(self):
    size = math.prod(self.dims)
    object.__setattr__(self, "size", size)
    object.__setattr__(self, "nbytes", size * _BITS.get(self.dtype, 32) // 8)

  @property
  def is_float(self) -> bool:
    return self.dtype in FLOAT_TYPES

  @property
  def is_complex(self) -> bool:
    return self.dtype in ("c64", "c128")


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
  """Every array in a (possibly tuple) HLO type, in order; layouts are ignored."""
  return list(_parse_type(text))


@dataclasses.dataclass(slots=True)
class Instr:
  """One HLO instruction."""

  name: str
  type_text: str
  opcode: str
  operands: list[str]
  attrs: str
  op_name: str
  root: bool = False
  _arrays: list[Array] | None = None

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

  def called(self, key: str) -> list[str]:
    """Computation names referenced by ``key`` (``calls``, ``to_apply``, ``body``...)."""
    v = self.attr(key)
    if not v:
      return []
    return [s.strip().lstrip("%") for s in v.strip("{}").split(",") if s.strip()]

  def int_list(self, key: str) -> list[int]:
    v = self.attr(key)
    if not v:
      return []
    return [int(s) for s in re.findall(r"-?\d+", v)]


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


def _match_close(s: str, i: int) -> int:
  """Index just past the bracket closing the one at ``s[i]``."""
  depth, quote = 0, False
  for j in range(i, len(s)):
    ch = s[j]
    if quote:
      if ch == '"' and s[j - 1] != "\\":
        quote = False
      continue
    if ch == '"':
      quote = True
    elif ch in "({[":
      depth += 1
    elif ch in ")}]":
      depth -= 1
      if depth == 0:
        return j + 1
  return len(s)


def _split_top(s: str) -> list[str]:
  parts, depth, cur, quote = [], 0, [], False
  for ch in s:
    if quote:
      cur.append(ch)
      if ch == '"':
        quote = False
      continue
    if ch == '"':
      quote = True
    elif ch in "({[":
      depth += 1
    elif ch in ")}]":
      depth -= 1
    if ch == "," and depth == 0:
      parts.append("".join(cur))
      cur = []
    else:
      cur.append(ch)
  if cur:
    parts.append("".join(cur))
  return parts


def parse_instr(line: str) -> Instr | None:
  m = _INSTR.match(line)
  if not m:
    return None
  i = m.end()
  if i < len(line) and line[i] == "(":
    j = _match_close(line, i)
  else:
    j = line.find(" ", i)
    if j < 0:
      return None
  type_text = line[i:j]
  mo = _OPCODE.match(line, j)
  if not mo:
    return None
  opcode = mo.group(1)
  k = mo.end() - 1
  end = _match_close(line, k)
  operand_text = line[k + 1:end - 1]
  operands = []
  for part in _split_top(operand_text):
    toks = [t for t in part.split() if t.startswith("%")]
    operands.append(toks[-1][1:] if toks else part.strip())
  attrs = line[end:].lstrip(", ")
  mn = _OP_NAME.search(attrs)
  return Instr(m.group(2), type_text, opcode, operands, attrs,
               mn.group(1) if mn else "", root=bool(m.group(1)))


@dataclasses.dataclass
class Computation:
  name: str
  instrs: list[Instr]
  entry: bool = False

  def __post_init__(self):
    self.by_name = {i.name: i for i in self.instrs}

  @property
  def root(self) -> Instr:
    for i in self.instrs:
      if i.root:
        return i
    return self.instrs[-1]


@dataclasses.dataclass
class Module:
  computations: dict[str, Computation]
  entry: str
  devices: int = 1  # num_partitions x replica_count from the module header


  @property
  def entry_computation(self) -> Computation:
    return self.computations[self.entry]


def parse_module(text: str) -> Module:
  """Parses the text of one HloModule (the first one if several are concatenated).

  Raises:
    HloParseError: the text is truncated (it ends inside a computation, or has
      computations but no ENTRY), has a line inside a computation that is not an
      instruction, a malformed or negative shape, an instruction calling a computation
      that is not there, a computation calling itself, or an empty computation.
  """
  if not isinstance(text, str):
    raise TypeError(f"parse_module(text=...) must be HLO text (str), got {type(text).__name__}")
  try:
    module = _parse_module(text)
    _check_module(module)
  except HloParseError:
    raise
  except (ValueError, IndexError, KeyError, RecursionError, OverflowError) as e:
    raise HloParseError(f"malformed HLO text ({type(e).__name__}: {e}); pass the text of "
                        f"compiled.as_text() or lowered.as_text('hlo') unchanged") from None
  return module


def _check_module(module: Module) -> None:
  """Structure checks: shapes, called computations, no cycles, no empty computation."""
  comps = module.computations
  calls: dict[str, set[str]] = {}
  for comp in comps.values():
    if not comp.instrs:
      raise HloParseError(f"computation {comp.name!r} has no instruction: malformed HLO")
    out = calls[comp.name] = set()
    for ins in comp.instrs:
      try:
        arrays = ins.arrays
      except ValueError as e:
        raise HloParseError(f"instruction {ins.name!r} in {comp.name!r} has a malformed "
                            f"shape {ins.type_text!r} ({e})") from None
      if any(d < 0 for a in arrays for d in a.dims):
        raise HloParseError(f"instruction {ins.name!r} in {comp.name!r} has a negative "
                            f"dimension in {ins.type_text!r}")
      for key in CALL_KEYS:
        if key + "=" not in ins.attrs:
          continue
        for callee in ins.called(key):
          if callee not in comps:
            raise HloParseError(f"instruction {ins.name!r} in {comp.name!r} calls "
                                f"{callee!r} ({key}=), which is not in the module: "
                                f"truncated or malformed HLO")
          out.add(callee)
  state: dict[str, int] = {}  # 1: on the current path, 2: done
  for start in comps:
    if state.get(start):
      continue
    stack = [(start, iter(sorted(calls[start])))]
    state[start] = 1
    while stack:
      name, it = stack[-1]
      nxt = next(it, None)
      if nxt is None:
        state[name] = 2
        stack.pop()
      elif state.get(nxt) == 1:
        raise HloParseError(f"computation {nxt!r} calls itself (through {name!r}): a "
                            f"cyclic HLO module cannot be counted")
      elif not state.get(nxt):
        state[nxt] = 1
        stack.append((nxt, iter(sorted(calls[nxt]))))


def _parse_module(text: str) -> Module:
  comps: dict[str, Computation] = {}
  entry = ""
  cur: list[Instr] | None = None
  name, is_entry = "", False
  devices = 1
  start_line = 0
  for n, line in enumerate(text.splitlines(), start=1):
    if cur is None:
      if not line or line[0].isspace() or not line.rstrip().endswith("{"):
        if line.startswith("HloModule"):
          if comps:
            break  # a second module follows
          devices = _header_devices(line)
        continue
      m = _HEADER.match(line)
      if not m:
        continue
      name, is_entry, cur, start_line = m.group(2), bool(m.group(1)), [], n
      if name in comps:
        raise HloParseError(f"line {n}: computation {name!r} is defined twice")
      continue
    s = line.strip()
    if s == "}":
      comps[name] = Computation(name, cur, is_entry)
      if is_entry:
        entry = name
      cur = None
      continue
    ins = parse_instr(line)
    if ins is not None:
      cur.append(ins)
    elif s:
      raise HloParseError(f"line {n} of computation {name!r} is not an HLO instruction: "
                          f"{s[:80]!r}")
  if cur is not None:
    raise HloParseError(f"the HLO text ends inside computation {name!r} (opened at line "
                        f"{start_line}): it is truncated; pass the whole compiled.as_text()")
  if comps and not entry:
    raise HloParseError("the HLO text has computations but no ENTRY computation: it is "
                        "truncated or not one module; pass the whole compiled.as_text()")
  return Module(comps, entry, devices)


def _header_devices(line: str) -> int:
  n = 1
  for key in ("num_partitions", "replica_count"):
    m = re.search(rf"\b{key}=(\d+)", line)
    if m:
      n *= int(m.group(1))
  return n


_IOTA = re.compile(r"^\[(\d+),(\d+)\]<=")
_MESH = re.compile(r"^mesh\[([^\]]*)\]\s*\{([^}]*)\}")


def group_size(replica_groups: str | None, all_devices: int) -> int:
  """Devices per replica group, from an HLO ``replica_groups=`` attribute.

  Understands the explicit list (``{{0,1},{2,3}}``), the iota form (``[2,2]<=[4]``),
  the named-mesh form TPU emits (``mesh['x'=2,'y'=2] {'y'}``) and the empty list (all
  devices).
  """
  v = (replica_groups or "").strip()
  if not v or v == "{}" or v == "{{}}":
    return all_devices
  m = _IOTA.match(v)
  if m:
    return int(m.group(2))
  m = _MESH.match(v)
  if m:
    sizes = {k.strip().strip("'\""): int(s)
             for k, s in re.findall(r"([^,=]+)=(\d+)", m.group(1))}
    n = 1
    for tok in m.group(2).split(","):
      tok = tok.strip()
      if not tok:
        continue
      sub = re.match(r"^'?([^':]+)'?:\((\d+)\)(\d+)$", tok)  # a sub-axis 'x':(k)m
      if sub:
        n *= int(sub.group(3))
      else:
        n *= sizes.get(tok.strip("'\""), 1)
    return n
  first = re.search(r"\{([\d,\s]+)\}", v[1:] if v.startswith("{{") else v)
  if first:
    return len([s for s in first.group(1).split(",") if s.strip()])
  return all_devices
