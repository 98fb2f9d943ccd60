"""A small reader of HLO text (``compiled.as_text()``) into :mod:`jaxgreen._src.hlo.ir`.

Only what counting needs is parsed eagerly (name, result type, opcode, operand names,
the raw attribute text and ``metadata={op_name=...}``); attributes are read on demand
by the accessors of :class:`~jaxgreen._src.hlo.ir.Instr`.

Example:
  >>> m = parse_module('''HloModule m, num_partitions=2
  ... ENTRY %main (p: f32[4]) -> f32[4] {
  ...   %p = f32[4]{0} parameter(0)
  ...   ROOT %n = f32[4]{0} negate(f32[4]{0} %p), metadata={op_name="jit(f)/neg"}
  ... }''')
  >>> m.entry, m.devices, m.entry_computation.root.opcode
  ('main', 2, 'negate')
"""

from __future__ import annotations

import re

from jaxgreen._src.hlo.ir import (
  CALL_KEYS,
  Computation,
  HloParseError,
  Instr,
  Module,
)

_HEADER = re.compile(r"^(ENTRY\s+)?%?([^\s({]+)\s*[({]")
_INSTR = re.compile(r"^\s*(ROOT\s+)?%?([^\s=]+)\s*=\s*")
_COMMENT = re.compile(r"/\*.*?\*/")
_OPCODE = re.compile(r"\s*([a-z][a-z0-9\-_$]*)\(")
_OP_NAME = re.compile(r'op_name="((?:[^"\\]|\\.)*)"')


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
  """One instruction line, or None if the line is not one."""
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
    # XLA numbers every fifth operand of a long list: `/*index=5*/%x`.
    part = _COMMENT.sub(" ", part)
    toks = [t for t in part.split() if t.startswith("%")]
    operands.append(toks[-1][1:] if toks else part.strip())
  attrs = line[end:].lstrip(", ")
  mn = _OP_NAME.search(attrs)
  return Instr(m.group(2), type_text, opcode, operands, attrs,
               mn.group(1) if mn else "", root=bool(m.group(1)))


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
  calls = {comp.name: _check_computation(module, comp) for comp in module.computations.values()}
  _check_acyclic(calls)


def _check_computation(module: Module, comp: Computation) -> set[str]:
  """Checks the instructions of ``comp``; returns the computations it calls."""
  if not comp.instrs:
    raise HloParseError(f"computation {comp.name!r} has no instruction: malformed HLO")
  out: set[str] = set()
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
        if callee not in module.computations:
          raise HloParseError(f"instruction {ins.name!r} in {comp.name!r} calls "
                              f"{callee!r} ({key}=), which is not in the module: "
                              f"truncated or malformed HLO")
        out.add(callee)
  return out


def _check_acyclic(calls: dict[str, set[str]]) -> None:
  """Raises if a computation calls itself, directly or not (``calls``: callees by name)."""
  state: dict[str, int] = {}  # 1: on the current path, 2: done
  for start in calls:
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


class _Reader:
  """The state of reading one module, line by line."""

  def __init__(self) -> None:
    self.comps: dict[str, Computation] = {}
    self.entry = ""
    self.devices = 1
    self.cur: list[Instr] | None = None  # the instructions of the open computation
    self.name, self.is_entry, self.start_line = "", False, 0

  def outside(self, n: int, line: str) -> bool:
    """A line between computations; False when a second module starts."""
    if not line or line[0].isspace() or not line.rstrip().endswith("{"):
      if line.startswith("HloModule"):
        if self.comps:
          return False  # a second module follows
        self.devices = header_devices(line)
      return True
    m = _HEADER.match(line)
    if m:
      self.name, self.is_entry, self.cur, self.start_line = (
          m.group(2), bool(m.group(1)), [], n)
      if self.name in self.comps:
        raise HloParseError(f"line {n}: computation {self.name!r} is defined twice")
    return True

  def inside(self, n: int, line: str, cur: list[Instr]) -> None:
    """A line of the open computation: an instruction or its closing brace."""
    s = line.strip()
    if s == "}":
      self.comps[self.name] = Computation(self.name, cur, self.is_entry)
      if self.is_entry:
        self.entry = self.name
      self.cur = None
      return
    ins = parse_instr(line)
    if ins is not None:
      cur.append(ins)
    elif s:
      raise HloParseError(f"line {n} of computation {self.name!r} is not an HLO instruction: "
                          f"{s[:80]!r}")

  def module(self) -> Module:
    if self.cur is not None:
      raise HloParseError(f"the HLO text ends inside computation {self.name!r} (opened at "
                          f"line {self.start_line}): it is truncated; pass the whole "
                          f"compiled.as_text()")
    if self.comps and not self.entry:
      raise HloParseError("the HLO text has computations but no ENTRY computation: it is "
                          "truncated or not one module; pass the whole compiled.as_text()")
    return Module(self.comps, self.entry, self.devices)


def _open_braces(line: str) -> int:
  """Braces opened and not closed on ``line``, outside double-quoted strings."""
  depth, quoted, escaped = 0, False, False
  for ch in line:
    if escaped:
      escaped = False
    elif ch == "\\":
      escaped = quoted
    elif ch == '"':
      quoted = not quoted
    elif not quoted:
      depth += (ch == "{") - (ch == "}")
  return depth


def _parse_module(text: str) -> Module:
  r = _Reader()
  pending = ""  # an instruction whose attributes run over several lines
  for n, line in enumerate(text.splitlines(), start=1):
    if r.cur is not None:
      joined = f"{pending} {line.strip()}" if pending else line
      if _open_braces(joined) > 0:  # TPU kernels' frontend_attributes hold newlines
        pending = joined
        continue
      pending = ""
      r.inside(n, joined, r.cur)
    elif not r.outside(n, line):
      break
  return r.module()


def header_devices(line: str) -> int:
  """Devices of an ``HloModule`` header line: ``num_partitions x replica_count``.

  >>> header_devices("HloModule m, num_partitions=4, replica_count=2")
  8
  """
  n = 1
  for key in ("num_partitions", "replica_count"):
    m = re.search(rf"\b{key}=(\d+)", line)
    if m:
      n *= int(m.group(1))
  return n


