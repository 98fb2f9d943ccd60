"""Rules: a dict from primitive to a function that prices one equation.

A rule receives a :class:`~jaxgreen._src.jaxpr.interpreter.RuleContext` (what it may read
besides shapes and params: the primitive, result avals, cost model, policies, values
folded from constants, and ``walk()`` for a sub-jaxpr), the input avals positionally
and the equation params as keywords, and returns a :class:`~jaxgreen._src.cost.Counts` (a
leaf) or a :class:`~jaxgreen._src.cost.Cost` (a call or loop whose body was walked). Rules
name only the params they use: ``def _reduce_sum(ctx, x, *, axes, **_)``.

Primitives that move data or only change metadata cost nothing, but only when they are
on the reviewed :data:`ZERO_COST` list; any other primitive without a rule is reported
as uncounted, never as a silent zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jax.extend import core as jcore

from jaxgreen._src.cost_model import note_rule

Rule = Callable[..., Any]

_RULES: dict[jcore.Primitive, Rule] = {}
_RULES_BY_NAME: dict[str, Rule] = {}


def register(*prims: jcore.Primitive | str) -> Callable[[Rule], Rule]:
  """Registers one rule for several primitives; fails loudly on misuse.

  A primitive may be given as the object (preferred) or by name, for primitives that
  jax does not export publicly. A second, different rule for the same primitive is an
  error; naming one primitive twice (jax releases alias some primitive objects, such as
  ``closed_call_p is call_p``) registers it once.
  """
  for p in prims:
    if not isinstance(p, jcore.Primitive | str):
      raise TypeError(f"register() takes Primitive objects or names, got {p!r}")

  def deco(rule: Rule) -> Rule:
    builtin = getattr(rule, "__module__", "").startswith("jaxgreen.")
    for p in prims:
      if isinstance(p, str):
        _add(_RULES_BY_NAME, p, p, rule)
      else:
        _add(_RULES, p, p.name, rule)
      note_rule(p if isinstance(p, str) else p.name, builtin=builtin)
    return rule

  return deco


def _add(table: dict[Any, Rule], key: jcore.Primitive | str, name: str, rule: Rule) -> None:
  if table.get(key) is rule:  # the same primitive under two of its aliases
    return
  if key in table or name in ZERO_COST:
    raise ValueError(f"a cost rule for primitive {name!r} is already registered")
  if isinstance(key, str) and any(q.name == key and r is not rule for q, r in _RULES.items()):
    # lookup() tries the primitive object first: this rule would never run.
    raise ValueError(f"a cost rule for primitive {name!r} is already registered (for "
                     f"its primitive object); to change what it costs per element "
                     f"pass jaxgreen.CostModel({{{name!r}: (adds, muls)}}) where it is "
                     f"priced, or give your own operation a primitive of its own")
  table[key] = rule


def lookup(prim: jcore.Primitive) -> Rule | None:
  return _RULES.get(prim) or _RULES_BY_NAME.get(prim.name)


def registered_names() -> set[str]:
  return {p.name for p in _RULES} | set(_RULES_BY_NAME)


# Reviewed list of primitives that do no arithmetic: layout, data movement, metadata,
# dtype casts, RNG-key plumbing, references (state), effects, and the halves of
# asynchronous collectives that only wait or move data. Keep sorted; each entry was
# checked against its jax implementation. Primitive names differ between jax releases
# (``reduced_vary_cast_p`` in jax 0.10 is ``reduced_vary_cast`` in 0.12): both are listed.
# Nothing that can carry a computation belongs here: ``scatter`` (whose ``update_jaxpr``
# is ``x.at[i].apply(f)``'s function) has a rule.
ZERO_COST: frozenset[str] = frozenset({
    "accum_grad_in_ref", "after_all", "all_gather_done", "all_gather_reduced",
    "all_gather_reduced_start", "all_gather_start", "all_to_all_done", "all_to_all_start",
    "axis_index",
    "bitcast_convert_type", "box_get", "box_set", "broadcast_in_dim", "broadcast_to",
    "check", "complex", "concatenate", "conj", "convert_element_type", "copy",
    "create_linear", "create_token", "dce_sink", "debug_callback", "debug_print",
    "device_put",
    "dim_as_value", "dimension_size", "dynamic_slice", "dynamic_update_slice", "empty",
    "empty2", "empty_ref", "free_ref", "freeze", "from_edtype", "gather", "get", "imag",
    "inspect_sharding", "iota", "layout_constraint", "log_extend", "log_read", "mesh_cast",
    "name", "new_box", "new_log", "new_ref", "optimization_barrier", "pad", "pbroadcast",
    "pbroadcast_done", "pbroadcast_start", "pin", "platform_index", "ppermute_done",
    "ppermute_start", "precv", "preduced", "psend", "psum_done", "pvary", "random_clone",
    "random_seed", "random_unwrap", "random_wrap", "real", "reduce_scatter_done",
    "pbroadcast_dynamic", "reduced_vary_cast", "reduced_vary_cast_p", "relayout", "reshape",
    "reshard", "rev", "shape_assertion",
    "shard_alike", "sharding_constraint", "slice", "split", "squeeze", "stack", "stage",
    "stop_gradient", "swap", "tie", "tile", "to_edtype", "transpose", "unpin", "unreachable",
    "unstack", "vary_unreduced_cast", "vary_unreduced_cast_p",
    "with_memory_space_constraint", "xla_metadata_value", "zeros_like",
})

# Zero-cost primitives that do not touch memory either (metadata only).
NO_BYTES: frozenset[str] = frozenset({
    "accum_grad_in_ref", "after_all", "bitcast_convert_type", "check", "create_token", "dce_sink",
    "debug_callback", "debug_print", "dim_as_value", "dimension_size", "free_ref",
    "freeze", "inspect_sharding", "layout_constraint", "mesh_cast", "name",
    "optimization_barrier", "pin", "platform_index", "preduced", "pvary",
    "random_unwrap", "random_wrap", "reduced_vary_cast", "reduced_vary_cast_p", "reshape",
    "reshard",
    "shape_assertion", "shard_alike", "sharding_constraint", "squeeze", "stop_gradient",
    "tie", "unpin", "unreachable", "vary_unreduced_cast", "vary_unreduced_cast_p",
    "with_memory_space_constraint", "xla_metadata_value",
})
