"""The programs :func:`jaxgreen.flax.summary` counts: a linen or nnx model's forward
pass as a function of its parameters, traced once, and its gradient program.

nnx modules push no name scopes of their own, so for the count each submodule of a
throwaway copy of the model is given a subclass whose methods run under
``jax.named_scope(attribute_name)``; the user's model is never modified.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from jax.extend import core as jax_core

from jaxgreen._src.program import Program


def program(model: nn.Module | nnx.Module, inputs: tuple, variables: Mapping | None, rngs: Any,
            method: str | Callable | None, mutable: bool | str | Sequence[str],
            kwargs: dict[str, Any]) -> dict[str, Any]:
  """The forward program of a linen or nnx model, its parameters and other state, and
  its modules by path (see :func:`_linen_program`); argument errors name the argument."""
  if isinstance(model, nn.Module):
    return _linen_program(model, inputs, variables, rngs, method, mutable, kwargs)
  if isinstance(model, nnx.Module):
    for arg, value in (("variables", variables), ("rngs", rngs)):
      if value is not None:
        raise TypeError(f"summary({arg}=...) is for linen modules; an nnx module holds "
                        f"its own state and rngs: pass {arg}=None")
    if mutable is not False:
      raise TypeError("summary(mutable=...) is for linen modules; nnx modules update "
                      "their state in place: pass mutable=False")
    return _nnx_program(model, inputs, method, kwargs)
  raise TypeError(f"summary(model=...) must be a flax.linen.Module or flax.nnx.Module, "
                  f"got {type(model).__name__}")


def _linen_program(model, inputs, variables, rngs, method, mutable, kwargs) -> dict:
  if rngs is None:
    # Only the shapes of the variables are needed: an abstract key, so that nothing is
    # compiled or run for it (a concrete key(0) is a program of its own, cold each time).
    rngs = jax.eval_shape(lambda: jax.random.key(0))
  if variables is None:
    try:
      variables = jax.eval_shape(functools.partial(model.init, method=method, **kwargs),
                                 rngs, *inputs)
    except Exception as e:
      raise ValueError(f"summary: could not initialise {type(model).__name__} with "
                       f"model.init(rngs, *inputs); pass variables=... or rngs=... "
                       f"({type(e).__name__}: {e})") from e
  if not isinstance(variables, Mapping):
    raise TypeError(f"summary(variables=...) must be a dict of collections such as "
                    f"{{'params': ...}}, got {type(variables).__name__}")
  variables = dict(variables)
  params = variables.pop("params", {})
  apply_rngs = rngs if isinstance(rngs, Mapping) else None
  modules: dict[tuple[str, ...], str] = {(): type(model).__name__}

  def record(next_fun, args, kw, context):
    path = tuple(context.module.path)
    if path:  # the root's path () is shared by lifted wrappers such as CheckpointB
      modules.setdefault(path, type(context.module).__name__)
    return next_fun(*args, **kw)

  def forward(params, rest, *inputs):
    with nn.intercept_methods(record):
      out = model.apply({"params": params, **rest}, *inputs, method=method,
                        mutable=mutable, rngs=apply_rngs, **kwargs)
    # (output, updated collections): the updates (batch_stats, ...) are work too.
    return out if mutable is not False else (out, {})

  return {"forward": forward, "params": params, "rest": variables, "modules": modules,
          "root": type(model).__name__}


def _nnx_program(model, inputs, method, kwargs) -> dict:
  graphdef, params, *others = nnx.split(model, nnx.Param, ...)
  rest = others[0]  # everything that is not a parameter
  root = type(model).__name__
  modules: dict[tuple[str, ...], str] = {}
  for path, node in nnx.iter_graph(model):
    if isinstance(node, nnx.Module):
      modules.setdefault(tuple(str(p) for p in path), type(node).__name__)

  def forward(params, rest, *inputs):
    m = nnx.merge(graphdef, params, rest)
    nodes = {tuple(str(p) for p in path): node for path, node in nnx.iter_graph(m)
             if isinstance(node, nnx.Module)}
    for path, node in nodes.items():
      if path:
        # Containers (nnx.List, or a list or dict under nnx.data, which is not a
        # module) are never called, so a child's scope names the path from the
        # nearest ancestor that is: "layers/0".
        k = max(k for k in range(len(path))
                if k == 0 or (path[:k] in nodes
                              and "__call__" in _user_methods(type(nodes[path[:k]]))))
        object.__setattr__(node, "__class__", _scoped_class(type(node), "/".join(path[k:])))
    fn = m if method is None else (getattr(m, method) if isinstance(method, str) else None)
    if fn is None:
      raise TypeError(f"summary(method={method!r}): for nnx modules give the method's name")
    with jax.named_scope(root):
      out = fn(*inputs, **kwargs)
    # (output, state after the call): state updated in place (BatchNorm statistics,
    # rng counters) is work of the forward pass too, not dead code.
    return out, nnx.state(m, nnx.Not(nnx.Param))

  return {"forward": forward, "params": params, "rest": rest, "modules": modules,
          "root": root}


def trace_once(fn: Callable, args: tuple) -> tuple[Program, Callable]:
  """``fn`` on ``args`` as a :class:`~jaxgreen._src.program.Program` of their leaves, and a
  function that evaluates its jaxpr on the same pytrees.

  The program's trace (jax's AOT ``jax.jit(f).trace(...)``) is traced once: its
  ``.jaxpr`` is what jaxgreen counts and its lowering what XLA estimates.
  """
  flat, in_tree = jax.tree.flatten(args)
  program = Program(lambda *f: fn(*jax.tree.unflatten(in_tree, f)), flat, caller="summary")
  traced = program.traced
  out_tree = jax.tree.structure(traced.out_info, is_leaf=lambda x: hasattr(x, "shape"))
  run = jax_core.jaxpr_as_fun(traced.jaxpr)

  def replay(*args):
    return jax.tree.unflatten(out_tree, run(*jax.tree.leaves(args)))

  return program, replay


def grad_program(forward: Callable, loss: Callable | None) -> Callable:
  def scalar(params, rest, *inputs):
    out, updates = forward(params, rest, *inputs)
    if loss is not None:
      return loss(out), updates
    leaves = [x for x in jax.tree.leaves(out) if jnp.issubdtype(x.dtype, jnp.inexact)]
    if not leaves:
      raise ValueError("summary(backward=True): the model has no floating-point output; "
                       "pass loss=... (output -> scalar)")
    # Sum of squares, not a plain sum: the gradient of a sum does not depend on the
    # output, so the last layers' forward work would be dead code, unlike a real loss.
    return functools.reduce(jnp.add, [jnp.sum(x * x) for x in leaves]), updates

  # The state updates are an output of the train program as of the forward one.
  return jax.grad(scalar, has_aux=True)



# -- nnx scopes --------------------------------------------------------------------

_ACTIVE: set[int] = set()  # ids of nnx modules whose scope is already pushed


@functools.cache
def _scoped_class(cls: type, name: str) -> type:
  """A subclass of ``cls`` whose public methods run under ``jax.named_scope(name)``.

  Cached per (class, name), so nnx transforms that re-create the module from its
  graph definition (nnx.scan, nnx.vmap, nnx.remat) re-create the scoped class too.
  """
  if getattr(cls, "_jaxgreen_scope", None) is not None:
    cls = cls.__mro__[1]  # already scoped under another name: scope the original
  ns: dict[str, Any] = {"_jaxgreen_scope": name, "__module__": cls.__module__,
                        "__qualname__": cls.__qualname__}
  for attr in _user_methods(cls):
    ns[attr] = _scoped_method(getattr(cls, attr), name if attr == "__call__"
                              else f"{name}.{attr}")
  return type(cls.__name__, (cls,), ns)


@functools.cache
def _user_methods(cls: type) -> tuple[str, ...]:
  names = []
  for klass in cls.__mro__:
    mod = klass.__module__ or ""
    if klass is object or (mod.startswith("flax.nnx") and not mod.startswith("flax.nnx.nn")):
      continue
    for attr, value in vars(klass).items():
      if inspect.isfunction(value) and (attr == "__call__" or not attr.startswith("_")):
        names.append(attr)
  return tuple(sorted(set(names)))


def _scoped_method(fn: Callable, scope: str) -> Callable:
  @functools.wraps(fn)
  def method(self, *args, **kw):
    if id(self) in _ACTIVE:  # a method calling another method of the same module
      return fn(self, *args, **kw)
    _ACTIVE.add(id(self))
    try:
      with jax.named_scope(scope):
        return fn(self, *args, **kw)
    finally:
      _ACTIVE.discard(id(self))

  return method

