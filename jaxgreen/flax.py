"""Per-module FPO tables for Flax models (linen and nnx), from one trace of the model.

``summary(model, *inputs)`` traces the whole ``apply`` once with :func:`jaxgreen.count`
and files the work of every equation under the module that issued it, using the jaxpr
name stack (``GPT2/h_0/mlp/c_fc``). Lifted transforms keep their paths: work inside
``nn.scan`` is multiplied by the scan length, ``nn.remat`` recomputation lands on the
rematerialised module, and ``nn.vmap`` counts the mapped batch.

nnx modules push no name scopes of their own, so for the count each submodule of a
throwaway copy of the model is given a subclass whose methods run under
``jax.named_scope(attribute_name)``; the user's model is never modified.

Conventions are those of :func:`jaxgreen.count`: a ``Dense`` of ``n_in -> n_out`` on
``b`` rows is MUL = b·n_in·n_out, ADD = b·(n_in-1)·n_out plus b·n_out for the bias; a
convolution counts every window tap on input or edge padding (lhs-dilation holes excluded).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from jax.extend import core as jax_core

from jaxgreen.api import count_jaxpr
from jaxgreen.cost import Cost, Counts
from jaxgreen.report import human, markdown_table, table

__all__ = ["ModuleSummary", "summary", "xla_flops"]

# Name-stack segments that transforms insert between module names. jax.checkpoint's
# backward pass re-enters the forward under "rematted_computation" and, for linen's
# nn.remat, repeats the root module's name; neither is a module.
_TRANSFORM_SEGMENTS = frozenset({"rematted_computation", "checkpoint", "remat"})

_UNAVAILABLE = "unavailable"


@dataclasses.dataclass(frozen=True)
class ModuleSummary:
  """A per-module FPO table of a Flax model.

  Attributes:
    model: the model's class name.
    rows: one plain dict per module, parents before children, DataFrame-ready
      (``pandas.DataFrame(s.rows)``). Keys: ``path`` (``"ResNet/layer1_0/conv1"``),
      ``module`` (class name), ``depth`` (0 for the model), ``params`` (parameters in
      the module and its children), ``adds``/``muls``/``fpo`` (forward pass, module
      *including* its children), ``own_fpo`` (forward work issued by the module's own
      code, children excluded) and, with ``backward=True``, ``train_adds``,
      ``train_muls``, ``train_fpo`` (forward + backward, including children) and
      ``train_own_fpo``.
      The model's row includes work done outside any module, so its counts equal
      the totals.
    totals: ``params``, ``adds``, ``muls``, ``fpo`` (forward), ``xla_flops`` (XLA's
      ``cost_analysis()['flops']`` of the forward program, or ``"unavailable"``) and,
      with ``backward=True``, ``train_adds``, ``train_muls``, ``train_fpo``,
      ``xla_train_flops``.
    forward: the full :class:`~jaxgreen.Cost` of the forward pass.
    train: the full :class:`~jaxgreen.Cost` of forward + backward, or None.
  """

  model: str
  rows: tuple[dict[str, Any], ...]
  totals: dict[str, Any]
  forward: Cost
  train: Cost | None = None

  @property
  def backward(self) -> bool:
    return self.train is not None

  def _columns(self) -> tuple[list[str], list[list[object]]]:
    headers = ["module path", "type", "params", "ADD", "MUL", "FPO", "own FPO"]
    if self.backward:
      headers += ["train FPO"]
    out = []
    for r in self.rows:
      name = r["path"].rsplit("/", 1)[-1]
      cells = ["  " * r["depth"] + name, r["module"], f"{r['params']:,}", human(r["adds"]),
               human(r["muls"]), human(r["fpo"]), human(r["own_fpo"])]
      if self.backward:
        cells.append(human(r["train_fpo"]))
      out.append(cells)
    t = self.totals
    total = ["total", "", f"{t['params']:,}", human(t["adds"]), human(t["muls"]),
             human(t["fpo"]), ""]
    if self.backward:
      total.append(human(t["train_fpo"]))
    out.append(total)
    return headers, out

  def _footer(self) -> list[str]:
    t = self.totals
    lines = [f"FPO = ADD + MUL (Green AI). Forward FPO: {t['fpo']:,}; "
             f"XLA flops: {_fmt_xla(t['xla_flops'])}."]
    if self.backward:
      lines.append(f"Forward + backward FPO: {t['train_fpo']:,}; "
                   f"XLA flops: {_fmt_xla(t['xla_train_flops'])}.")
    if not self.forward.exact or (self.train is not None and not self.train.exact):
      lines.append("Counts are not exact: see .forward.uncounted / .forward.inexact.")
    return lines

  def __str__(self) -> str:
    headers, body = self._columns()
    align = "ll" + "r" * (len(headers) - 2)
    return "\n".join([f"{self.model}", table(headers, body, align), *self._footer()])

  def to_markdown(self) -> str:
    """The table as GitHub Markdown (module paths indented with non-breaking spaces)."""
    headers, body = self._columns()
    for cells in body:
      stripped = cells[0].lstrip(" ")
      cells[0] = "\u00a0" * (len(cells[0]) - len(stripped)) + stripped
    align = "ll" + "r" * (len(headers) - 2)
    return "\n\n".join([f"**{self.model}**", markdown_table(headers, body, align),
                        "  \n".join(self._footer())])

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready: ``model``, ``rows``, ``totals``, ``forward`` and ``train`` costs."""
    return {"model": self.model, "rows": [dict(r) for r in self.rows],
            "totals": dict(self.totals), "forward": self.forward.to_dict(),
            "train": None if self.train is None else self.train.to_dict()}

  def to_json(self, **kw) -> str:
    return json.dumps(self.to_dict(), **kw)


def summary(model: nn.Module | nnx.Module, *inputs: Any, variables: Mapping | None = None,
            rngs: Any = None, method: str | Callable | None = None,
            mutable: bool | str | Sequence[str] = False, backward: bool = False,
            loss: Callable[[Any], jax.Array] | None = None, max_depth: int | None = None,
            xla: bool = True, **kwargs: Any) -> ModuleSummary:
  """Counts a Flax model's forward (and optionally backward) pass, module by module.

  The model is traced once (nothing is allocated or run; ``inputs`` may be arrays or
  ``jax.ShapeDtypeStruct``) and the work is filed under module paths from the jaxpr
  name stack. With ``backward=True`` a second program, ``jax.grad`` of a scalar loss
  of the output with respect to the parameters, is counted as it is: the backward
  work is counted from the real gradient program, not estimated as a multiple of the
  forward.

  Args:
    model: a ``flax.linen.Module`` or a ``flax.nnx.Module`` (concrete or from
      ``nnx.eval_shape``).
    *inputs: positional inputs of the model's call.
    variables: linen only: the variables (``{"params": ..., "batch_stats": ...}``),
      arrays or ShapeDtypeStructs. Default: ``jax.eval_shape(model.init, rngs, *inputs)``.
    rngs: linen only: a PRNG key or a dict of keys used to initialise and to apply
      (e.g. ``{"params": k, "dropout": k}``). Default ``jax.random.key(0)``.
    method: the method to profile instead of ``__call__`` (name or, for linen, function).
    mutable: linen only: collections the apply may update (``["batch_stats"]`` for
      BatchNorm in training mode); the updates are discarded.
    backward: also count forward + backward (gradient of ``loss`` w.r.t. the params).
    loss: scalar loss of the model's output for ``backward``; default: the sum of
      squares of all floating-point outputs (its n MUL and n-1 ADD land on the model's
      row). Dead code is removed before counting, so a loss whose gradient ignores the
      output (a plain sum) would drop the last layers' forward work.
    max_depth: leave out rows deeper than this (0 keeps only the model's row); their
      work is still included in their ancestors' rows.
    xla: also ask XLA for its flop estimate (``jit(...).lower(...).cost_analysis()``).
    **kwargs: keyword arguments of the model's call (e.g. ``train=False``).

  Returns:
    A :class:`ModuleSummary`; ``print(s)`` shows the table, ``s.rows`` are dicts.

  Example:
    >>> s = jaxgreen.flax.summary(nn.Dense(3), jax.ShapeDtypeStruct((2, 4), jnp.float32))
    >>> s.totals["muls"], s.totals["adds"]  # 2*4*3; 2*3*3 + 2*3 (bias)
    (24, 24)
  """
  if max_depth is not None and (not isinstance(max_depth, int) or max_depth < 0):
    raise ValueError(f"summary(max_depth={max_depth!r}) must be None or an int >= 0")
  if loss is not None and not callable(loss):
    raise TypeError(f"summary(loss=...) must be callable (output -> scalar), got {loss!r}")
  if isinstance(model, nn.Module):
    prog = _linen_program(model, inputs, variables, rngs, method, mutable, kwargs)
  elif isinstance(model, nnx.Module):
    for arg, value in (("variables", variables), ("rngs", rngs)):
      if value is not None:
        raise TypeError(f"summary({arg}=...) is for linen modules; an nnx module holds "
                        f"its own state and rngs: pass {arg}=None")
    if mutable is not False:
      raise TypeError("summary(mutable=...) is for linen modules; nnx modules update "
                      "their state in place: pass mutable=False")
    prog = _nnx_program(model, inputs, method, kwargs)
  else:
    raise TypeError(f"summary(model=...) must be a flax.linen.Module or flax.nnx.Module, "
                    f"got {type(model).__name__}")

  modules = prog["modules"]  # path tuple -> class name (recorded while tracing)
  args = (prog["params"], prog["rest"], *inputs)
  # The model's Python code is traced once; the gradient program replays that jaxpr
  # (same equations, same name stacks) instead of tracing it again, and XLA's estimate
  # lowers each program from the very trace jaxgreen counts (jax's AOT ``trace``).
  closed, replay, traced = _trace_once(prog["forward"], args)
  fwd = count_jaxpr(closed)
  train = grad_traced = None
  if backward:
    grad_closed, _, grad_traced = _trace_once(_grad_program(replay, loss), args)
    train = count_jaxpr(grad_closed)

  root = prog["root"]
  paths = [()] + [p for p in modules if p]  # call order (linen) / graph order (nnx)
  params = _param_counts(prog["params"])
  own_fwd = _by_module(fwd, root, modules)
  own_train = _by_module(train, root, modules) if train is not None else {}

  rows = []
  for path in _tree_order(paths, list(own_fwd)):
    if max_depth is not None and len(path) > max_depth:
      continue
    total = _subtree(own_fwd, path)
    row = {"path": "/".join((root, *path)), "module": modules[path], "depth": len(path),
           "params": sum(n for p, n in params.items() if p[:len(path)] == path),
           "adds": total.adds, "muls": total.muls, "fpo": total.fpo,
           "own_fpo": own_fwd.get(path, Counts()).fpo}
    if train is not None:
      t = _subtree(own_train, path)
      row |= {"train_adds": t.adds, "train_muls": t.muls, "train_fpo": t.fpo,
              "train_own_fpo": own_train.get(path, Counts()).fpo}
    rows.append(row)

  totals: dict[str, Any] = {"params": sum(params.values()), "adds": fwd.adds,
                            "muls": fwd.muls, "fpo": fwd.fpo, "xla_flops": _UNAVAILABLE}
  if xla:
    totals["xla_flops"] = _xla_flops_of(traced)
  if train is not None:
    totals |= {"train_adds": train.adds, "train_muls": train.muls, "train_fpo": train.fpo,
               "xla_train_flops": _UNAVAILABLE}
    if xla:
      totals["xla_train_flops"] = _xla_flops_of(grad_traced)
  return ModuleSummary(model=root, rows=tuple(rows), totals=totals, forward=fwd, train=train)


def xla_flops(fn: Callable, *args: Any) -> float | str:
  """XLA's flop estimate of ``fn(*args)``, or ``"unavailable"``.

  Best effort by design: ``cost_analysis()`` may be None, a list of dicts (one per
  program), lack the ``"flops"`` key, or report -1 for custom calls, depending on
  the backend and jax version. XLA counts a multiply-add as 2 flops, like FPO, but
  also counts some operations FPO leaves out (and vice versa).
  """
  try:
    analysis = jax.jit(fn).lower(*args).cost_analysis()
  except Exception:  # noqa: BLE001 -- any backend failure means "no estimate"
    return _UNAVAILABLE
  return _flops_of(analysis)


def _xla_flops_of(traced: Any) -> float | str:
  """XLA's flop estimate of a ``jax.jit(f).trace(...)`` result (see :func:`xla_flops`)."""
  try:
    analysis = traced.lower().cost_analysis()
  except Exception:  # noqa: BLE001 -- any backend failure means "no estimate"
    return _UNAVAILABLE
  return _flops_of(analysis)


def _flops_of(analysis: Any) -> float | str:
  if isinstance(analysis, list | tuple):
    analysis = analysis[0] if len(analysis) == 1 else None
  if not isinstance(analysis, Mapping):
    return _UNAVAILABLE
  flops = analysis.get("flops")
  if not isinstance(flops, int | float) or flops < 0 or not math.isfinite(flops):
    return _UNAVAILABLE
  return float(flops)


# -- programs ------------------------------------------------------------------


def _linen_program(model, inputs, variables, rngs, method, mutable, kwargs) -> dict:
  if rngs is None:
    rngs = jax.random.key(0)
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
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
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


def _trace_once(fn: Callable, args: tuple) -> tuple[Any, Callable, Any]:
  """``fn``'s jaxpr, a function that evaluates it on the same pytrees, and the trace.

  The trace is jax's AOT ``jax.jit(f).trace(...)``: its ``.jaxpr`` is what jaxgreen
  counts and its ``.lower()`` what XLA estimates, so the model is traced only once.
  """
  flat, in_tree = jax.tree.flatten(args)
  traced = jax.jit(lambda *f: fn(*jax.tree.unflatten(in_tree, f))).trace(*flat)
  closed = traced.jaxpr
  out_tree = jax.tree.structure(traced.out_info, is_leaf=lambda x: hasattr(x, "shape"))
  run = jax_core.jaxpr_as_fun(closed)

  def replay(*args):
    return jax.tree.unflatten(out_tree, run(*jax.tree.leaves(args)))

  return closed, replay, traced


def _grad_program(forward: Callable, loss: Callable | None) -> Callable:
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


# -- filing work under modules --------------------------------------------------------


def _by_module(cost: Cost, root: str, modules: Mapping[tuple[str, ...], str]
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


def _subtree(own: Mapping[tuple[str, ...], Counts], path: tuple[str, ...]) -> Counts:
  total = Counts()
  for p, c in own.items():
    if p[:len(path)] == path:
      total = total + c
  return total


def _tree_order(paths: Sequence[tuple[str, ...]], executed: Sequence[tuple[str, ...]]
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


def _param_counts(params) -> dict[tuple[str, ...], int]:
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


def _fmt_xla(x: float | str) -> str:
  return x if isinstance(x, str) else f"{x:,.0f}"
