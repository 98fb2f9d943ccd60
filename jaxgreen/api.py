"""``jaxgreen.count``: FPO of a JAX function, from its jaxpr."""

from __future__ import annotations

import functools
import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from jax.extend import core as jcore

from jaxgreen import jaxpr as _jaxpr_pkg  # noqa: F401  (registers the rules)
from jaxgreen._compat import dce_jaxpr
from jaxgreen._state import has_graph_nodes, with_final_state
from jaxgreen.cost import Cost
from jaxgreen.cost_model import DEFAULT, CostModel
from jaxgreen.jaxpr.interpreter import COND_POLICIES, Walker, known_scalar

if TYPE_CHECKING:
  from jaxgreen.hlo.kernels import KernelTable

STAGES = ("jaxpr", "lowered", "compiled")


def count(fn: Callable, *, static_argnums: int | Sequence[int] = (),
          cond: str = "max", strict: bool = False, cost_model: CostModel | None = None,
          trip_counts: Mapping[str, int] | int | None = None,
          dce: bool = True, stage: str = "jaxpr",
          target: str = "cpu") -> Callable[..., Cost]:
  """Counts the ADD and MUL operations of ``fn``, used like ``jax.make_jaxpr``.

  ``jaxgreen.count(f)(*args, **kwargs)`` traces ``f`` once (nothing is allocated or
  run: arguments may be arrays, pytrees, Python scalars or ``jax.ShapeDtypeStruct``)
  and walks the jaxpr. Pytrees with leaves that are not arrays (an Equinox module's
  activation function) and Equinox ``filter_jit`` functions are taken as Equinox
  takes them (:func:`array_arguments`): arrays traced, everything else static. Loops
  are multiplied by their trip counts, ``jax.grad`` is counted from the real backward
  program, and a primitive with no rule is listed in ``Cost.uncounted``, never counted
  as a silent zero.

  Conventions: ``dot_general`` is MUL = B*M*N*K, ADD = B*M*N*(K-1); a convolution
  counts every window tap on input or edge padding, a transposed one (``conv_transpose``,
  input gradients) every input element times every kernel tap; a
  reduction of n elements is n - 1 operations; transcendentals are priced by the
  :class:`CostModel`.

  Args:
    fn: the function, plain or ``jax.jit``-ed.
    static_argnums: an int or ints, positions of arguments that are static (hashable
      Python values).
    cond: how to count ``lax.cond``/``switch`` whose branch is not known at trace
      time: ``"max"`` (default, the costliest branch), ``"min"`` or ``"mean"``.
    strict: raise :class:`UncountedPrimitiveError` instead of listing a primitive
      with no rule in ``Cost.uncounted``.
    cost_model: prices of non-elementary operations; default :data:`CostModel()`.
    trip_counts: trip counts (ints >= 0) of while loops that cannot be proven from the
      program: ``{scope: n}`` (the scope named in ``Cost.inexact``) or one int for all.
    dce: remove equations whose results are unused before counting (as XLA would).
    stage: what is counted: ``"jaxpr"`` (default, the traced program), ``"lowered"``
      (the StableHLO module jax hands to XLA) or ``"compiled"`` (the optimized HLO XLA
      produces for ``target``; per device when inputs are sharded). The HLO stages use
      the same conventions, cost model and ``trip_counts`` (for the loops the module
      does not prove); ``strict`` applies to the jaxpr stage.
    target: for ``stage="compiled"``: ``"cpu"``, ``"tpu:v5e:2x2"``, ``"gpu:h100"``, ...
      (see :mod:`jaxgreen.targets`), compiled without the hardware; for
      ``stage="lowered"``, the platform the program is lowered for (Pallas TPU kernels
      lower only for a TPU target).

  Returns:
    A function taking ``fn``'s arguments and returning a :class:`Cost`.

  Example:
    >>> import jax, jax.numpy as jnp, jaxgreen
    >>> a = jax.ShapeDtypeStruct((8, 16), jnp.float32)
    >>> b = jax.ShapeDtypeStruct((16, 4), jnp.float32)
    >>> cost = jaxgreen.count(lambda a, b: a @ b)(a, b)
    >>> cost.muls, cost.adds  # 8*4*16, 8*4*15
    (512, 480)
  """
  if not callable(fn):
    raise TypeError(f"count(fn=...) must be callable, got {type(fn).__name__}: {fn!r}")
  cost_model, trip_counts = _check_options("count", cond, cost_model, trip_counts)
  static_argnums = _static_argnums(static_argnums)
  if stage not in STAGES:
    raise ValueError(f"count(stage={stage!r}): use one of {', '.join(STAGES)}")
  if stage != "jaxpr":
    from jaxgreen.targets import get_target

    get_target(target)  # an unknown target fails here, naming the known ones

  @functools.wraps(fn)
  def counted(*args, **kwargs) -> Cost:
    _check_shapes(args, kwargs)
    fn_, args, kwargs, static_argnums_ = array_arguments(fn, args, kwargs, static_argnums)
    return _count(fn_, args, kwargs, static_argnums_)

  def _count(fn: Callable, args: tuple, kwargs: dict,
             static_argnums: tuple[int, ...]) -> Cost:
    traced = fn
    if has_graph_nodes((args, kwargs)):
      # nnx objects updated in place (optimizer.update(model, grads)) are outputs of
      # the step: without this, dead-code elimination drops the backward pass.
      traced = jax.jit(with_final_state(fn), static_argnums=static_argnums)
    if stage == "lowered":
      from jaxgreen.hlo import count_lowered

      jitted = traced if hasattr(traced, "lower") else jax.jit(traced,
                                                               static_argnums=static_argnums)
      lowered = jitted.lower(*_placed(target, args, static_argnums), **kwargs)
      kernels = kernel_table(fn, *args, text=lowered.as_text(), cost_model=cost_model,
                             cond=cond, static_argnums=static_argnums,
                             trip_counts=trip_counts, **kwargs)
      return count_lowered(lowered, cost_model=cost_model, cond=cond, kernels=kernels,
                           trip_counts=trip_counts)
    if stage == "compiled":
      from jaxgreen.hlo import count_hlo_text
      from jaxgreen.targets import get_target

      _, compiled = get_target(target).compile(traced, *args, static_argnums=static_argnums,
                                               **kwargs)
      text = compiled.as_text()
      kernels = kernel_table(fn, *args, text=text, cost_model=cost_model, cond=cond,
                             static_argnums=static_argnums, trip_counts=trip_counts, **kwargs)
      return count_hlo_text(text, cost_model=cost_model, cond=cond, kernels=kernels,
                            trip_counts=trip_counts).cost
    closed = jax.make_jaxpr(traced, static_argnums=static_argnums)(*args, **kwargs)
    return count_jaxpr(closed, cond=cond, strict=strict, cost_model=cost_model,
                       trip_counts=trip_counts, dce=dce)

  return counted


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
  nnx objects (see :mod:`jaxgreen._state`), everything is returned unchanged.

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


def kernel_table(fn: Callable, *args, text: str | None = None,
                 cost_model: CostModel | None = None, cond: str = "max",
                 static_argnums: int | Sequence[int] = (),
                 trip_counts: Mapping[str, int] | int | None = None,
                 **kwargs) -> KernelTable | None:
  """The Pallas kernels of ``fn(*args, **kwargs)``, each counted at the jaxpr stage, for
  the HLO stages to count their custom calls with (:mod:`jaxgreen.hlo.kernels`).

  Args:
    text: the HLO or StableHLO text of the program, when at hand: if it holds no kernel
      custom call, nothing is traced and None is returned.
    trip_counts: as for :func:`count` (a kernel's runtime grid dimensions, its loops).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> x = jax.ShapeDtypeStruct((4,), jnp.float32)
    >>> len(kernel_table(lambda a: a * 2, x))  # no pallas_call: an empty table
    0
  """
  from jaxgreen.hlo.kernels import KERNEL_TARGETS, KernelEntry, KernelTable
  from jaxgreen.jaxpr.rules.pallas import jaxpr_kernels

  if text is not None and not any(t in text for t in KERNEL_TARGETS):
    return None
  nums = _static_argnums(static_argnums)
  if has_graph_nodes((args, kwargs)):
    fn = jax.jit(with_final_state(fn), static_argnums=nums)
  closed = jax.make_jaxpr(fn, static_argnums=nums)(*args, **kwargs)
  found = jaxpr_kernels(closed, cost_model=cost_model, cond=cond, trip_counts=trip_counts)
  return KernelTable(KernelEntry(k.scope, k.name, k.shapes, k.cost) for k in found)


def count_jaxpr(closed_jaxpr, *, cond: str = "max", strict: bool = False,
                cost_model: CostModel | None = None,
                trip_counts: Mapping[str, int] | int | None = None,
                dce: bool = True) -> Cost:
  """Counts an already traced jaxpr (see :func:`count` for the options).

  Args:
    closed_jaxpr: a ``ClosedJaxpr`` such as ``jax.make_jaxpr(f)(*args)``, or an open
      ``Jaxpr`` (its constvars are then unknown inputs).
  """
  cost_model, trip_counts = _check_options("count_jaxpr", cond, cost_model, trip_counts)
  if isinstance(closed_jaxpr, jcore.ClosedJaxpr):
    jaxpr, consts = closed_jaxpr.jaxpr, [known_scalar(c) for c in closed_jaxpr.consts]
  elif isinstance(closed_jaxpr, jcore.Jaxpr):
    jaxpr, consts = closed_jaxpr, [None] * len(closed_jaxpr.constvars)
  else:
    raise TypeError(f"count_jaxpr(closed_jaxpr=...) must be a ClosedJaxpr such as "
                    f"jax.make_jaxpr(f)(*args), or a Jaxpr; got "
                    f"{type(closed_jaxpr).__name__}")
  if dce:
    jaxpr, _ = dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars), instantiate=True)
  walker = Walker(cost_model=cost_model, cond=cond, strict=strict, trip_counts=trip_counts)
  return walker.walk(jaxpr, consts + [None] * len(jaxpr.invars))


def _check_options(fn_name: str, cond: str, cost_model: CostModel | None,
                   trip_counts: Mapping[str, int] | int | None,
                   ) -> tuple[CostModel, Mapping[str, int] | int | None]:
  """Validates the options shared by count and count_jaxpr; returns the cost model
  (the default for None) and the trip counts as Python ints."""
  if cond not in COND_POLICIES:
    raise ValueError(f"{fn_name}(cond={cond!r}): use one of {', '.join(COND_POLICIES)}")
  if cost_model is None:
    cost_model = DEFAULT
  elif not isinstance(cost_model, CostModel):
    raise TypeError(f"{fn_name}(cost_model=...) must be a jaxgreen.CostModel, got "
                    f"{type(cost_model).__name__}; build one with "
                    f"jaxgreen.CostModel({{'exp': (7, 7)}})")
  if trip_counts is None:
    return cost_model, None
  counts = trip_counts.items() if isinstance(trip_counts, Mapping) else [("", trip_counts)]
  for scope, n in counts:
    if (not isinstance(scope, str) or isinstance(n, bool)
        or not isinstance(n, numbers.Integral) or n < 0):
      raise TypeError(f"{fn_name}(trip_counts={trip_counts!r}) must be an int >= 0 or a "
                      f"mapping of scope name (as named in Cost.inexact) to int >= 0, "
                      f"e.g. trip_counts={{'solver': 10}}")
  if isinstance(trip_counts, Mapping):
    return cost_model, {scope: int(n) for scope, n in trip_counts.items()}
  return cost_model, int(trip_counts)


def _check_shapes(args: tuple, kwargs: dict) -> None:
  """A ShapeDtypeStruct with a negative dimension would be counted as negative work."""
  leaves = jax.tree_util.tree_flatten_with_path((args, kwargs))[0]
  for path, x in leaves:
    if isinstance(x, jax.ShapeDtypeStruct) and any(
        isinstance(d, int) and d < 0 for d in x.shape):
      where = jax.tree_util.keystr(path[1:]) if len(path) > 1 else ""
      raise ValueError(f"count(...)(...): argument {where or '?'} is a ShapeDtypeStruct with "
                       f"shape {tuple(x.shape)}: a dimension is negative; give its real "
                       f"size (>= 0)")


def _placed(target: str, args: tuple, static_argnums: Sequence[int]) -> tuple:
  """``args`` placed on ``target``'s deviceless devices (for a lowering for it); as
  they are for the default ``"cpu"``."""
  if target == "cpu":
    return args
  from jaxgreen.targets import get_target

  t = get_target(target)
  return tuple(a if i in static_argnums else t.place(a) for i, a in enumerate(args))


def _static_argnums(static_argnums: int | Sequence[int]) -> tuple[int, ...]:
  nums = (static_argnums,) if isinstance(static_argnums, int) else static_argnums
  try:
    out: tuple[int, ...] | None = tuple(nums)
  except TypeError:
    out = None
  if out is None or any(isinstance(i, bool) or not isinstance(i, int) for i in out):
    raise TypeError(f"count(static_argnums={static_argnums!r}) must be an int or a "
                    f"sequence of ints (argument positions), e.g. static_argnums=(1,)")
  return out
