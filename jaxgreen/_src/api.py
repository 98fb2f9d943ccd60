"""``jaxgreen.count``: FPO of a JAX function, from its jaxpr."""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from jax.extend import core as jcore

from jaxgreen._src import jaxpr as _jaxpr_pkg  # noqa: F401  (registers the rules)
from jaxgreen._src._compat import dce_jaxpr
from jaxgreen._src.cost import Cost
from jaxgreen._src.cost_model import DEFAULT, CostModel
from jaxgreen._src.jaxpr.interpreter import COND_POLICIES, Walker, known_scalar
from jaxgreen._src.program import (  # noqa: F401  (array_arguments, array_leaves: their old home)
  Program,
  array_arguments,
  array_leaves,
  static_argnums_of,
)

if TYPE_CHECKING:
  from jaxgreen._src.hlo.kernels import KernelTable

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
  static_argnums = static_argnums_of(static_argnums)
  if stage not in STAGES:
    raise ValueError(f"count(stage={stage!r}): use one of {', '.join(STAGES)}")
  if stage != "jaxpr":
    from jaxgreen.targets import get_target

    get_target(target)  # an unknown target fails here, naming the known ones

  @functools.wraps(fn)
  def counted(*args, **kwargs) -> Cost:
    program = Program(fn, args, kwargs, static_argnums=static_argnums, target=target,
                      cost_model=cost_model, cond=cond, trip_counts=trip_counts)
    return count_program(program, stage, cond=cond, strict=strict, cost_model=cost_model,
                         trip_counts=trip_counts, dce=dce)

  return counted


def count_program(program: Program, stage: str = "jaxpr", *, cond: str = "max",
                  strict: bool = False, cost_model: CostModel | None = None,
                  trip_counts: Mapping[str, int] | int | None = None,
                  dce: bool = True) -> Cost:
  """Counts one stage of a :class:`~jaxgreen._src.program.Program` (see :func:`count`)."""
  cost_model, trip_counts = _check_options("count", cond, cost_model, trip_counts)
  if stage == "lowered":
    from jaxgreen._src.hlo import count_lowered

    return count_lowered(program.lowered, cost_model=cost_model, cond=cond,
                         kernels=program.kernels_in(program.lowered_text),
                         trip_counts=trip_counts)
  if stage == "compiled":
    from jaxgreen._src.hlo import count_hlo_text

    text = program.compiled_text
    return count_hlo_text(text, cost_model=cost_model, cond=cond,
                          kernels=program.kernels_in(text), trip_counts=trip_counts).cost
  return count_jaxpr(program.jaxpr, cond=cond, strict=strict, cost_model=cost_model,
                     trip_counts=trip_counts, dce=dce)


def kernel_table(fn: Callable, *args, text: str | None = None,
                 cost_model: CostModel | None = None, cond: str = "max",
                 static_argnums: int | Sequence[int] = (),
                 trip_counts: Mapping[str, int] | int | None = None,
                 **kwargs) -> KernelTable | None:
  """The Pallas kernels of ``fn(*args, **kwargs)``, each counted at the jaxpr stage, for
  the HLO stages to count their custom calls with: ``count_hlo_text(text,
  kernels=kernel_table(f, *args))`` counts a kernel's custom call exactly.

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
  program = Program(fn, args, kwargs, static_argnums=static_argnums, cost_model=cost_model,
                    cond=cond, trip_counts=trip_counts)
  return program.kernel_table if text is None else program.kernels_in(text)


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
