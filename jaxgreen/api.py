"""``jaxgreen.count``: FPO of a JAX function, from its jaxpr."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
from jax._src.interpreters import partial_eval as pe

from jaxgreen import jaxpr as _jaxpr_pkg  # noqa: F401  (registers the rules)
from jaxgreen.cost import Cost
from jaxgreen.cost_model import DEFAULT, CostModel
from jaxgreen.jaxpr.interpreter import COND_POLICIES, Walker

STAGES = ("jaxpr", "lowered", "compiled")


def count(fn: Callable, *, static_argnums: int | Sequence[int] = (),
          cond: str = "max", strict: bool = False, cost_model: CostModel | None = None,
          trip_counts: Mapping[str, int] | int | None = None,
          dce: bool = True, stage: str = "jaxpr",
          target: str = "cpu") -> Callable[..., Cost]:
  """Counts the ADD and MUL operations of ``fn``, used like ``jax.make_jaxpr``.

  ``jaxgreen.count(f)(*args, **kwargs)`` traces ``f`` once (nothing is allocated or
  run: arguments may be arrays, pytrees, Python scalars or ``jax.ShapeDtypeStruct``)
  and walks the jaxpr. Loops are multiplied by their trip counts, ``jax.grad`` is
  counted from the real backward program, and a primitive with no rule is listed in
  ``Cost.uncounted``, never counted as a silent zero.

  Conventions: ``dot_general`` is MUL = B*M*N*K, ADD = B*M*N*(K-1); a convolution
  counts every window tap (padding included); a reduction of n elements is n - 1
  operations; transcendentals are priced by the :class:`CostModel`.

  Args:
    fn: the function, plain or ``jax.jit``-ed.
    static_argnums: positions of arguments that are static (hashable Python values).
    cond: how to count ``lax.cond``/``switch`` whose branch is not known at trace
      time: ``"max"`` (default, the costliest branch), ``"min"`` or ``"mean"``.
    strict: raise :class:`UncountedPrimitiveError` instead of listing a primitive
      with no rule in ``Cost.uncounted``.
    cost_model: prices of non-elementary operations; default :data:`CostModel()`.
    trip_counts: trip counts of while loops that cannot be proven from the program:
      ``{scope: n}`` (the scope named in ``Cost.inexact``) or one int for all.
    dce: remove equations whose results are unused before counting (as XLA would).
    stage: what is counted: ``"jaxpr"`` (default, the traced program), ``"lowered"``
      (the StableHLO module jax hands to XLA) or ``"compiled"`` (the optimized HLO XLA
      produces for ``target``; per device when inputs are sharded). The HLO stages use
      the same conventions and cost model; ``strict`` and ``trip_counts`` apply to the
      jaxpr stage.
    target: for ``stage="compiled"``: ``"cpu"``, ``"tpu:v5e:2x2"``, ``"gpu:h100"``, ...
      (see :mod:`jaxgreen.targets`), compiled without the hardware.

  Returns:
    A function taking ``fn``'s arguments and returning a :class:`Cost`.

  Example:
    >>> cost = jaxgreen.count(lambda a, b: a @ b)(jnp.ones((8, 16)), jnp.ones((16, 4)))
    >>> cost.muls, cost.adds  # 8*4*16, 8*4*15
    (512, 480)
  """
  if not callable(fn):
    raise TypeError(f"count(fn=...) must be callable, got {type(fn).__name__}: {fn!r}")
  if cond not in COND_POLICIES:
    raise ValueError(f"count(cond={cond!r}): use one of {', '.join(COND_POLICIES)}")
  if cost_model is None:
    cost_model = DEFAULT
  elif not isinstance(cost_model, CostModel):
    raise TypeError(f"count(cost_model=...) must be a jaxgreen.CostModel, got "
                    f"{type(cost_model).__name__}; build one with "
                    f"jaxgreen.CostModel({{'exp': (7, 7)}})")
  if trip_counts is not None and not isinstance(trip_counts, int | Mapping):
    raise TypeError(f"count(trip_counts={trip_counts!r}) must be an int or a mapping "
                    f"of scope name to int")
  if isinstance(static_argnums, int):
    static_argnums = (static_argnums,)
  static_argnums = tuple(static_argnums)
  if stage not in STAGES:
    raise ValueError(f"count(stage={stage!r}): use one of {', '.join(STAGES)}")
  if stage == "compiled":
    from jaxgreen.targets import get_target

    get_target(target)  # an unknown target fails here, naming the known ones

  @functools.wraps(fn)
  def counted(*args, **kwargs) -> Cost:
    if stage == "lowered":
      from jaxgreen.hlo.stablehlo import count_lowered

      jitted = fn if hasattr(fn, "lower") else jax.jit(fn, static_argnums=static_argnums)
      return count_lowered(jitted.lower(*args, **kwargs), cost_model=cost_model, cond=cond)
    if stage == "compiled":
      from jaxgreen.hlo.compiled import count_hlo_text
      from jaxgreen.targets import get_target

      _, compiled = get_target(target).compile(fn, *args, static_argnums=static_argnums,
                                               **kwargs)
      return count_hlo_text(compiled.as_text(), cost_model=cost_model, cond=cond).cost
    closed = jax.make_jaxpr(fn, static_argnums=static_argnums)(*args, **kwargs)
    return count_jaxpr(closed, cond=cond, strict=strict, cost_model=cost_model,
                       trip_counts=trip_counts, dce=dce)

  return counted


def count_jaxpr(closed_jaxpr, *, cond: str = "max", strict: bool = False,
                cost_model: CostModel | None = None,
                trip_counts: Mapping[str, int] | int | None = None,
                dce: bool = True) -> Cost:
  """Counts an already traced ``ClosedJaxpr`` (see :func:`count` for the options)."""
  jaxpr = closed_jaxpr.jaxpr
  if dce:
    jaxpr, _ = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars), instantiate=True)
  walker = Walker(cost_model=cost_model or DEFAULT, cond=cond, strict=strict,
                  trip_counts=trip_counts)
  known: list[Any] = [_scalar(c) for c in closed_jaxpr.consts]
  known += [None] * len(jaxpr.invars)
  return walker.walk(jaxpr, known)


def _scalar(c):
  from jaxgreen.jaxpr.interpreter import _py

  return _py(c)
