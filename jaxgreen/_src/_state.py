"""State that a traced function updates in place, made visible to the count.

An idiomatic nnx train step (``@nnx.jit``, ``nnx.value_and_grad``,
``optimizer.update(model, grads)``) returns only the loss: the new parameters and
optimizer moments are written into the ``nnx.Variable`` objects of its arguments, not
returned. Traced as is, the updates are not outputs of the program, so dead-code
elimination (jaxgreen's, jax's or XLA's) would drop the backward pass and the
optimizer and report a fraction of the step's cost. :func:`with_final_state` makes the
final state of every nnx object among the arguments an output of the traced program,
exactly as the functional form (split, step, merge, split) returns it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import jax


def _nnx():
  # Only a program that already imported flax.nnx can pass nnx objects.
  return sys.modules.get("flax.nnx")


def _objects(nnx) -> tuple[type, ...]:
  # nnx.Pytree (flax >= 0.12) was nnx.Object before; Module and Optimizer derive from it.
  base = getattr(nnx, "Pytree", None) or getattr(nnx, "Object", None)
  return tuple(t for t in (base, nnx.Module, nnx.Variable) if isinstance(t, type))


def _nodes(tree: Any) -> list:
  nnx = _nnx()
  if nnx is None:
    return []
  types = _objects(nnx)
  stop = lambda x: isinstance(x, types)
  return [x for x in jax.tree.leaves(tree, is_leaf=stop) if stop(x)]


def has_graph_nodes(tree: Any) -> bool:
  """Whether ``tree`` holds an nnx object (a Module, Optimizer, Variable, ...)."""
  return bool(_nodes(tree))


def final_state(tree: Any) -> list:
  """The state (``nnx.state``) of each nnx object in ``tree``, as it is now."""
  nodes = _nodes(tree)
  if not nodes:
    return []
  nnx = _nnx()
  return [_value(x) if isinstance(x, nnx.Variable) else nnx.state(x) for x in nodes]


def _value(v):
  get = getattr(v, "get_value", None)  # flax >= 0.12; ``.value`` before
  return get() if get is not None else v.value


def with_final_state(fn: Callable) -> Callable:
  """``fn`` returning ``(its output, the final state of its nnx arguments)``."""

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    out = fn(*args, **kwargs)
    return out, final_state((args, kwargs))

  return wrapped
