"""Scope names: jax name stacks and HLO op_name paths reduced to one module path.

``transpose(jvp(MLP))/Dense_1`` and ``jit(step)/jit(main)/jvp(MLP)/Dense_1/dot_general``
both describe work done for ``MLP/Dense_1``. Transform wrappers (jvp, transpose, vmap,
remat, checkpoint) are unwrapped and ``jit(...)`` segments dropped, so the jaxpr, the
StableHLO and the compiled HLO attribute work to the same keys.
"""

from __future__ import annotations

import functools
import re

_WRAPPER = re.compile(r"^(?:jvp|transpose|vmap|remat|checkpoint|pmap|batched|"
                      r"custom_jvp|custom_vjp|linearize|grad)\((.*)\)$")
_DROP = re.compile(r"^p?jit\(.*\)$")
# Segments jax adds for a transformation rather than a module: the recomputation of a
# rematerialised block is attributed to the block itself.
_DROP_NAMES = frozenset({"rematted_computation"})


@functools.lru_cache(maxsize=8192)
def clean_scope(name_stack: str) -> str:
  """Normalises a name stack to a module path ('' for the top level)."""
  out: list[str] = []
  last_wrapped: str | None = None
  for seg in _split(name_stack):
    wrapped = False
    while (m := _WRAPPER.match(seg)):
      seg, wrapped = m.group(1), True
    if not seg or _DROP.match(seg) or seg in _DROP_NAMES:
      continue
    # The backward pass of a rematerialised module runs under
    # `transpose(jvp(M))/jvp(M)`: one scope seen by two transforms, not M inside M.
    if wrapped and seg == last_wrapped:
      continue
    last_wrapped = seg if wrapped else None
    # a wrapper may hold a path: jvp(a/b)
    out.extend(s for s in _split(seg) if s and s not in _DROP_NAMES)
  return "/".join(out)


def join(prefix: str, scope: str) -> str:
  if not prefix:
    return scope
  if not scope:
    return prefix
  return f"{prefix}/{scope}"


def _split(path: str) -> list[str]:
  """Splits on '/' outside parentheses."""
  parts: list[str] = []
  cur: list[str] = []
  depth = 0
  for ch in path:
    if ch == "(":
      depth += 1
    elif ch == ")":
      depth -= 1
    if ch == "/" and depth == 0:
      parts.append("".join(cur))
      cur = []
    else:
      cur.append(ch)
  parts.append("".join(cur))
  return parts
