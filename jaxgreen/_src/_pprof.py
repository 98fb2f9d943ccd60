"""A count as a pprof profile: gzipped ``profile.proto``, written without a protobuf
runtime.

The format is Go's pprof profile (github.com/google/pprof, ``proto/profile.proto``),
which ``go tool pprof``, speedscope and most flame-graph viewers read. Each site of a
count (the user's Python stack, the scope, the primitive; see ``Cost.by_site``) is one
sample: its locations are the stack's frames, innermost first, as the format wants; its
values ADD, MUL, transcendentals, bytes and FPO (sample types, FPO the default); its
labels ``scope`` and ``primitive``. Counts are integers (a ``cond="mean"`` average is
rounded to the nearest one).

Only the protobuf wire format's two encodings the profile needs are written here: varints
(wire type 0) and length-delimited fields (wire type 2: strings, messages, packed lists).
"""

from __future__ import annotations

import gzip
from typing import Any

# FPO is last and the default: Go's pprof reads ``default_sample_type`` (a string index
# of the type's name), speedscope takes the last type when that index is past its list.
SAMPLE_TYPES = (("adds", "count"), ("muls", "count"), ("transcendentals", "count"),
                ("bytes", "bytes"), ("fpo", "count"))
NO_FRAME = "<no user frame>"
TOP_LEVEL = "<top level>"

# Field numbers of profile.proto.
_P_SAMPLE_TYPE, _P_SAMPLE, _P_LOCATION, _P_FUNCTION, _P_STRINGS = 1, 2, 4, 5, 6
_P_PERIOD_TYPE, _P_PERIOD, _P_COMMENT, _P_DEFAULT_TYPE = 11, 12, 13, 14


def varint(n: int) -> bytes:
  """The base-128 varint of an integer >= 0."""
  if n < 0:
    raise ValueError(f"a profile value must be >= 0, got {n}")
  out = bytearray()
  while n > 0x7F:
    out.append((n & 0x7F) | 0x80)
    n >>= 7
  out.append(n)
  return bytes(out)


def _int(field: int, n: int) -> bytes:
  return varint(field << 3) + varint(n) if n else b""  # zero is the default: omitted


def _bytes(field: int, data: bytes) -> bytes:
  return varint(field << 3 | 2) + varint(len(data)) + data


def _packed(field: int, values: list[int]) -> bytes:
  return _bytes(field, b"".join(varint(v) for v in values))


class _Strings:
  def __init__(self) -> None:
    self.index: dict[str, int] = {"": 0}  # the format reserves string 0 for ""

  def __call__(self, s: str) -> int:
    i = self.index.get(s)
    if i is None:
      i = self.index[s] = len(self.index)
    return i

  def encode(self) -> bytes:
    return b"".join(_bytes(_P_STRINGS, s.encode()) for s in self.index)


def _split(frame: str) -> tuple[str, int, str]:
  file, line, function = frame.rsplit(":", 2)
  return file, int(line), function


class _Table:
  """Functions (name, file) and locations (one per frame), numbered from 1."""

  def __init__(self, strings: _Strings):
    self.s = strings
    self.functions: dict[tuple[str, str], int] = {}
    self.locations: dict[str, tuple[int, int, int]] = {}  # frame -> (id, function, line)

  def location(self, frame: str) -> int:
    hit = self.locations.get(frame)
    if hit is None:
      file, line, name = _split(frame) if frame != NO_FRAME else ("", 0, NO_FRAME)
      fid = self.functions.setdefault((name, file), len(self.functions) + 1)
      hit = self.locations[frame] = (len(self.locations) + 1, fid, line)
    return hit[0]

  def encode(self) -> bytes:
    out = []
    for (name, file), fid in self.functions.items():
      fn = (_int(1, fid) + _int(2, self.s(name)) + _int(3, self.s(name))
            + _int(4, self.s(file)))
      out.append(_bytes(_P_FUNCTION, fn))
    for lid, fid, line in self.locations.values():
      out.append(_bytes(_P_LOCATION, _int(1, lid) + _bytes(4, _int(1, fid) + _int(2, line))))
    return b"".join(out)


def _label(strings: _Strings, key: str, value: str) -> bytes:
  return _bytes(3, _int(1, strings(key)) + _int(2, strings(value)))


def encode(sites: list[tuple[str, str, str, Any]]) -> bytes:
  """The (uncompressed) profile of ``(stack, scope, primitive, counts)`` rows."""
  strings = _Strings()
  table = _Table(strings)
  out = [_bytes(_P_SAMPLE_TYPE, _int(1, strings(t)) + _int(2, strings(u)))
         for t, u in SAMPLE_TYPES]
  for stack, scope, prim, c in sites:
    values = [round(c.adds), round(c.muls), round(c.transcendentals), round(c.bytes),
              round(c.adds + c.muls)]
    if not any(values):
      continue
    frames = stack.split(";") if stack else [NO_FRAME]
    locs = [table.location(f) for f in reversed(frames)]  # the leaf first
    sample = (_packed(1, locs) + _packed(2, values) + _label(strings, "scope", scope or TOP_LEVEL)
              + _label(strings, "primitive", prim))
    out.append(_bytes(_P_SAMPLE, sample))
  out.append(table.encode())
  tail = (_bytes(_P_PERIOD_TYPE, _int(1, strings("fpo")) + _int(2, strings("count")))
          + _int(_P_PERIOD, 1)
          + _int(_P_DEFAULT_TYPE, strings("fpo"))
          + _packed(_P_COMMENT, [strings("jaxgreen: FPO = ADD + MUL, counted from the jaxpr")]))
  return b"".join(out) + strings.encode() + tail


def profile(cost: Any) -> bytes:
  """The gzipped pprof profile of a ``Cost`` (its ``sites()``).

  Raises:
    ValueError: the cost has no sites (a count of compiled HLO, or one loaded from JSON
      written before sites were recorded).
  """
  sites = cost.sites()
  if not sites and cost.fpo:
    raise ValueError("this Cost has no source sites to profile: count the function at "
                     "stage='jaxpr' (the default), whose equations carry Python stacks")
  return gzip.compress(encode(sites), mtime=0)
