"""One function and its arguments at jax's stages: traced, lowered, compiled.

As ``jax.stages`` (Traced -> Lowered -> Compiled), a :class:`Program` holds what each
stage gives, computed on first use and kept: the closed jaxpr, the lowered module and its
StableHLO text, the executable compiled for a target and its HLO text, and the table of
Pallas kernels the HLO stages count custom calls with. Every counter of jaxgreen
(``count``, ``reconcile``, ``compare``, ``pods``, ``flax.summary``, ``track``) reads its
stages from here, so the arguments are prepared once:

* ``static_argnums`` is checked and normalised once (:func:`static_argnums_of`);
* pytrees with leaves jax cannot trace (an Equinox module's activation) are split into
  arrays and fixed values as Equinox splits them (:func:`array_arguments`);
* nnx objects a step updates in place are made outputs of the program
  (:mod:`jaxgreen._src._state`), or dead-code elimination would drop the backward pass.

The function is traced once: the jaxpr, the lowering and the kernel table share jax's
trace of the same callable (for a target other than ``"cpu"`` the arguments are placed on
its devices, which is a trace of their own). Compiling falls back, on TPU, to a program
without the SparseCore gather offload when the compiled HLO cannot be read back.

Example:
  >>> import jax, jax.numpy as jnp
  >>> x = jax.ShapeDtypeStruct((8, 8), jnp.float32)
  >>> p = Program(lambda a: a @ a, (x,))
  >>> [e.primitive.name for e in p.jaxpr.eqns]
  ['dot_general']
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jaxgreen._src._args import static_argnums_of
from jaxgreen._src._state import has_graph_nodes, with_final_state

if TYPE_CHECKING:
  from jaxgreen._src.cost_model import CostModel
  from jaxgreen._src.hlo.kernels import KernelTable
  from jaxgreen.targets import Target

__all__ = ["Program", "array_arguments", "array_leaves", "static_argnums_of"]

# libtpu may offload embedding gathers to a v5p/v6e SparseCore as an async custom call
# whose ``async-update`` this jaxlib cannot read back (``compiled.as_text()`` fails);
# compiling again without that offload keeps the TensorCore program the same.
_READABLE_TPU_OPTIONS = {"xla_tpu_offload_gather_to_sparsecore": "false"}


class Program:
  """``fn(*args, **kwargs)`` at its stages, each computed once on first use.

  Nothing runs: arguments may be arrays, pytrees, Python scalars or
  ``jax.ShapeDtypeStruct`` (sharded over :func:`jaxgreen.targets.mesh` devices for a
  partitioned program). Attributes are read-only; the stages are cached properties.

  Args:
    fn: the function, plain or ``jax.jit``-ed.
    args: its positional arguments.
    kwargs: its keyword arguments.
    static_argnums: an int or ints, positions of static (hashable) arguments.
    target: the target the HLO stages are lowered and compiled for (``"cpu"``,
      ``"tpu:v5e:2x2"``, ``"gpu:h100"``, ... or a :class:`~jaxgreen.targets.Target`).
    cost_model, cond, trip_counts: how the kernel table counts a Pallas kernel's body
      (as :func:`jaxgreen.count`).
    caller: the public function named in argument errors (``"count"``, ``"reconcile"``).

  Attributes:
    fn, args, kwargs, static_argnums: what is traced, lowered and compiled: the user's
      function and arguments once split into arrays and fixed values (and ``fn`` made to
      return the final state of the nnx objects it updates in place).
  """

  fn: Callable
  args: tuple
  kwargs: dict[str, Any]
  static_argnums: tuple[int, ...]
  _target: str | Target
  _kernel_options: dict[str, Any]

  def __init__(self, fn: Callable, args: Sequence[Any] = (),
               kwargs: Mapping[str, Any] | None = None, *,
               static_argnums: int | Sequence[int] = (), target: str | Target = "cpu",
               cost_model: CostModel | None = None, cond: str = "max",
               trip_counts: Mapping[str, int] | int | None = None,
               caller: str = "count"):
    if not callable(fn):
      raise TypeError(f"{caller}(fn=...) must be callable, got {type(fn).__name__}: {fn!r}")
    nums = static_argnums_of(static_argnums, caller)
    _check_shapes(tuple(args), kwargs or {}, caller)
    fn, args, kwargs, nums = array_arguments(fn, tuple(args), kwargs or {}, nums)
    if has_graph_nodes((args, kwargs)):
      fn = jax.jit(with_final_state(fn), static_argnums=nums)
    for name, value in (("fn", fn), ("args", args), ("kwargs", kwargs),
                        ("static_argnums", nums), ("_target", target),
                        ("_kernel_options", {"cost_model": cost_model, "cond": cond,
                                             "trip_counts": trip_counts})):
      object.__setattr__(self, name, value)

  def __setattr__(self, name: str, value: Any) -> None:
    raise AttributeError(f"Program is read-only: cannot set {name!r}")

  def __repr__(self) -> str:
    name = getattr(self.fn, "__name__", type(self.fn).__name__)
    done = [k.lstrip("_") for k in ("jaxpr", "traced", "lowered", "_compiled")
            if k in self.__dict__]
    return f"Program({name}, target={str(self._target)!r}, stages done={done})"

  # -- stages ------------------------------------------------------------------------

  @functools.cached_property
  def jaxpr(self) -> jax.extend.core.ClosedJaxpr:
    """The closed jaxpr, as ``jax.make_jaxpr(fn, static_argnums)(*args, **kwargs)``."""
    return jax.make_jaxpr(self.fn, static_argnums=self.static_argnums)(*self.args,
                                                                       **self.kwargs)

  @functools.cached_property
  def target(self) -> Target:
    """The parsed target (an unknown target string fails here, naming the known ones)."""
    from jaxgreen.targets import get_target

    return get_target(self._target)

  @functools.cached_property
  def traced(self) -> Any:
    """jax's trace for the target (``jax.stages.Traced``, as ``jax.jit(fn).trace(...)``):
    the same trace as :attr:`jaxpr` where the arguments are not placed on a target's
    devices (jax keeps one trace per function and signature)."""
    jitted = self.fn if hasattr(self.fn, "trace") else jax.jit(
        self.fn, static_argnums=self.static_argnums)
    return jitted.trace(*self._placed(), **self.kwargs)

  @functools.cached_property
  def lowered(self) -> Any:
    """The lowered program (``jax.stages.Lowered``) for the target's platform: the one
    the compiled stage was lowered from, when that stage was reached first."""
    if "_compiled" in self.__dict__:
      return self._compiled[0]
    if hasattr(self.fn, "lower") and not hasattr(self.fn, "trace"):
      return self.fn.lower(*self._placed(), **self.kwargs)
    return self.traced.lower()

  @functools.cached_property
  def lowered_text(self) -> str:
    """The lowered module as StableHLO text."""
    return self.lowered.as_text()

  @property
  def compiled(self) -> Any:
    """The executable compiled for the target (:meth:`jaxgreen.targets.Target.compile`;
    kept in jaxgreen's compilation cache for TPU and GPU targets)."""
    return self._compiled[1]

  @property
  def compiled_text(self) -> str:
    """The compiled, optimized HLO text (per device for a partitioned program)."""
    return self._compiled[2]

  @property
  def notes(self) -> tuple[str, ...]:
    """Caveats of the compiled stage (a compile fallback that was taken)."""
    return self._compiled[3]

  @functools.cached_property
  def _compiled(self) -> tuple[Any, Any, str, tuple[str, ...]]:
    """``(lowered, compiled, hlo_text, notes)``; on TPU, when the compiled HLO cannot be
    read back (a SparseCore gather offload), compiled once more without that offload."""
    from jaxgreen._src._quiet import quiet_stderr

    t = self.target
    lowered, compiled = t.compile(self.fn, *self.args, static_argnums=self.static_argnums,
                                  **self.kwargs)
    try:
      return lowered, compiled, compiled.as_text(), ()
    except Exception as e:  # noqa: BLE001 - jaxlib raises JaxRuntimeError (INTERNAL)
      if t.platform != "tpu":
        raise
      first = str(e).splitlines()[0][:160]
    with quiet_stderr():
      compiled = lowered.compile(compiler_options=dict(_READABLE_TPU_OPTIONS))
    return lowered, compiled, compiled.as_text(), (
        f"compiled HLO unreadable ({first}); compiled again with "
        f"xla_tpu_offload_gather_to_sparsecore=false",)

  @functools.cached_property
  def kernel_table(self) -> KernelTable:
    """The Pallas kernels of the program, each counted at the jaxpr stage from
    :attr:`jaxpr` (no second trace), for the HLO stages to count their custom calls with
    (:mod:`jaxgreen._src.hlo.kernels`)."""
    from jaxgreen._src.hlo.kernels import KernelEntry, KernelTable
    from jaxgreen._src.jaxpr.rules.pallas import jaxpr_kernels

    found = jaxpr_kernels(self.jaxpr, **self._kernel_options)
    return KernelTable(KernelEntry(k.scope, k.name, k.shapes, k.cost) for k in found)

  def kernels_in(self, text: str) -> KernelTable | None:
    """:attr:`kernel_table` when the HLO ``text`` calls a kernel, else None (and nothing
    is traced for it)."""
    from jaxgreen._src.hlo.kernels import KERNEL_TARGETS

    if not any(t in text for t in KERNEL_TARGETS):
      return None
    return self.kernel_table

  def _placed(self) -> tuple:
    """The arguments placed on the target's deviceless devices (for a lowering for it);
    as they are for ``"cpu"``."""
    if str(self._target) == "cpu":
      return self.args
    static = self.static_argnums
    return tuple(a if i in static else self.target.place(a) for i, a in enumerate(self.args))


# -- Equinox's split: arrays traced, every other leaf fixed --------------------------------

def array_arguments(fn: Callable, args: tuple, kwargs: Mapping[str, Any],
                    static_argnums: Sequence[int] = ()
                    ) -> tuple[Callable, tuple, dict[str, Any], tuple[int, ...]]:
  """``fn`` and its arguments as a function of their arrays alone, as Equinox splits them.

  When an argument holds a leaf that jax cannot trace (a function, a string, any
  object), or Equinox is in play (``fn`` is an Equinox transform such as
  ``eqx.filter_jit``, or an argument holds an ``eqx.Module``), the arguments are split
  as ``eqx.filter_jit`` splits them: arrays (and ``jax.ShapeDtypeStruct``) are traced,
  every other leaf, Python scalars included, is fixed at its value; leaves of the output
  that are not arrays (the updated model's activation) are dropped. Otherwise, and for
  nnx objects (see :mod:`jaxgreen._src._state`), everything is returned unchanged.

  Returns:
    ``(fn, args, kwargs, static_argnums)`` to trace, lower or compile instead.

  Example:
    >>> import jax.numpy as jnp
    >>> f, args, kwargs, static = array_arguments(
    ...     lambda p, x: p["act"](x * p["w"]), ({"act": jnp.tanh, "w": jnp.ones(3)},
    ...                                          jnp.ones(3)), {})
    >>> len(args), kwargs, static  # the two arrays; tanh is fixed
    (2, {}, ())
  """
  nums = tuple(static_argnums)
  kwargs = dict(kwargs)
  n = len(args)
  static_pos = {i % n for i in nums if -n <= i < n}
  dynamic = tuple(a for i, a in enumerate(args) if i not in static_pos)
  if has_graph_nodes((args, kwargs)) or not _partitioned(fn, (dynamic, kwargs)):
    return fn, args, kwargs, nums
  marked = tuple(_Fixed(a) if i in static_pos else a for i, a in enumerate(args))
  leaves, treedef = jax.tree_util.tree_flatten((marked, kwargs))
  where = [i for i, x in enumerate(leaves) if _is_array(x)]

  @functools.wraps(fn)
  def on_arrays(*arrays):
    ls = list(leaves)
    for i, a in zip(where, arrays, strict=True):
      ls[i] = a
    a, kw = jax.tree_util.tree_unflatten(treedef, ls)
    return array_leaves(fn(*(x.value if isinstance(x, _Fixed) else x for x in a), **kw))

  return on_arrays, tuple(leaves[i] for i in where), {}, ()


def array_leaves(out: Any) -> list:
  """The array leaves of ``out`` (a traced function's result): what a count keeps of it."""
  return [x for x in jax.tree_util.tree_leaves(out) if _is_array(x)]


class _Fixed:
  """A static argument, kept whole (not a pytree) while the others are split."""

  __slots__ = ("value",)

  def __init__(self, value: Any):
    self.value = value


def _is_array(x: Any) -> bool:
  # eqx.is_array's arrays, and the abstract ones count takes in their place (a
  # ShapeDtypeStruct, or any object with a shape and a dtype, as jax takes them).
  return (isinstance(x, jax.Array | np.ndarray | np.generic | jax.ShapeDtypeStruct)
          or (not isinstance(x, type) and hasattr(x, "shape") and hasattr(x, "dtype")))


def _traceable(x: Any) -> bool:
  return _is_array(x) or isinstance(x, bool | int | float | complex)


def _partitioned(fn: Callable, tree: Any) -> bool:
  """Whether ``fn``'s arguments are split into arrays and static leaves."""
  leaves = jax.tree_util.tree_leaves(tree)
  if not all(_traceable(x) for x in leaves):
    return True
  eqx = sys.modules.get("equinox")  # only a program that imported it can pass its objects
  if eqx is None:
    return False
  if isinstance(fn, eqx.Module) or type(fn).__module__.split(".")[0] == "equinox":
    return True
  is_module = lambda x: isinstance(x, eqx.Module)
  return any(is_module(x) for x in jax.tree_util.tree_leaves(tree, is_leaf=is_module))


def _check_shapes(args: tuple, kwargs: Mapping[str, Any], caller: str) -> None:
  """A ShapeDtypeStruct with a negative dimension would be counted as negative work."""
  leaves = jax.tree_util.tree_flatten_with_path((args, kwargs))[0]
  for path, x in leaves:
    if isinstance(x, jax.ShapeDtypeStruct) and any(
        isinstance(d, int) and d < 0 for d in x.shape):
      where = jax.tree_util.keystr(path[1:]) if len(path) > 1 else ""
      raise ValueError(f"{caller}(...)(...): argument {where or '?'} is a ShapeDtypeStruct with "
                       f"shape {tuple(x.shape)}: a dimension is negative; give its real "
                       f"size (>= 0)")
