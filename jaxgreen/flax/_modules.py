"""Filing counted work under Flax modules: scope names to module paths, per-module
parameter counts, and the order of a summary's rows."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import jax

from jaxgreen._src.cost import Cost, Counts

# Name-stack segments that transforms insert between module names. jax.checkpoint's
# backward pass re-enters the forward under "rematted_computation" and, for linen's
# nn.remat, repeats the root module's name; neither is a module.
_TRANSFORM_SEGMENTS = frozenset({"rematted_computation", "checkpoint", "remat"})


def by_module(cost: Cost, root: str, modules: Mapping[tuple[str, ...], str]
               ) -> dict[tuple[str, ...], Counts]:
  """Module path -> Counts issued by that module's own code (children excluded)."""
  out: dict[tuple[str, ...], Counts] = {}
  # Every prefix of a module path: a plain container between two modules ("layers" in
  # "layers/0") is a step of the walk but has no row of its own.
  prefixes = {p[:k] for p in modules for k in range(len(p) + 1)}
  for scope, c in cost.by_scope.items():
    path = _module_of(scope, root, modules, prefixes)
    out[path] = out.get(path, Counts()) + c
  return out


@functools.lru_cache(maxsize=65536)
def _segments(scope: str) -> tuple[str, ...]:
  return tuple(s for s in scope.split("/") if s and s not in _TRANSFORM_SEGMENTS)


def _module_of(scope: str, root: str, modules, prefixes) -> tuple[str, ...]:
  """The deepest known module a scope names; unmatched work goes to the model's row.

  The root name may appear more than once (linen's nn.remat backward re-enters the
  forward under the full stack), so every occurrence is tried and the deepest wins.
  ``prefixes`` holds every prefix of a path in ``modules``.
  """
  segs = _segments(scope)
  best: tuple[str, ...] = ()
  for start, seg in enumerate(segs):
    if seg != root:
      continue
    path: tuple[str, ...] = ()
    for s in segs[start + 1:]:
      for cand in (s, s.split(".", 1)[0]):  # "wte.attend" is module "wte"'s method
        if path + (cand,) in prefixes:
          path += (cand,)
          break
      else:
        if path and s == path[-1]:  # re-entered under its own name (linen nn.cond)
          continue
        break
    while path not in modules:  # a walk that stopped inside a container
      path = path[:-1]
    if len(path) > len(best):
      best = path
  return best


def subtree(own: Mapping[tuple[str, ...], Counts], path: tuple[str, ...]) -> Counts:
  total = Counts()
  for p, c in own.items():
    if p[:len(path)] == path:
      total = total + c
  return total


def tree_order(paths: Sequence[tuple[str, ...]], executed: Sequence[tuple[str, ...]]
                ) -> list[tuple[str, ...]]:
  """Parents before children; siblings in the order their work first runs.

  ``executed`` lists module paths in the order the interpreter met their work; modules
  that did no work keep their recorded (call or graph) order after those that did.
  """
  recorded = {p: i for i, p in enumerate(paths)}
  first: dict[tuple[str, ...], int] = {}
  for i, p in enumerate(executed):
    for k in range(len(p) + 1):
      first.setdefault(p[:k], i)
  late = len(executed)

  def key(p):
    return tuple((first.get(p[:k + 1], late), recorded.get(p[:k + 1], 0))
                 for k in range(len(p)))

  return sorted(paths, key=key)


def param_counts(params) -> dict[tuple[str, ...], int]:
  """Module path of each parameter leaf -> its size (the leaf's own name dropped)."""
  out: dict[tuple[str, ...], int] = {}
  for keypath, leaf in jax.tree_util.tree_leaves_with_path(params):
    # nnx wraps each array in a Variable reached by attribute ".value"; a dict key
    # "value" is a module name (e.g. attention's value projection) and is kept.
    names = tuple(_key_name(k) for k in keypath
                  if not (isinstance(k, jax.tree_util.GetAttrKey)
                          and k.name in ("value", "raw_value")))
    size = int(math.prod(getattr(leaf, "shape", ())))
    out[names[:-1]] = out.get(names[:-1], 0) + size
  return out


def _key_name(k) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)

