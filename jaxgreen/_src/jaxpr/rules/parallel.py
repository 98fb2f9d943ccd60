"""Collectives and SPMD regions.

Counts are per device inside ``shard_map`` bodies; the ``shard_map`` rule multiplies
the body by the number of devices running it, so the result is the global count.

* ``psum`` of E elements over n devices: a global total of (n-1)*E ADDs (every output
  element sums n values); per device (n-1)*E/n, as a ring all-reduce does.
* ``psum_scatter`` (reduce-scatter): the same (n-1)*E/n per device, E the input size.
* ``pmax``/``pmin``: the same counts as compares. Complex operands take two real
  operations per step; positional (vmap-style) axes are reduced locally first.
* ``all_gather``, ``all_to_all``, ``ppermute``: data movement, zero arithmetic.
"""

from __future__ import annotations

import math

from jax.extend.core import primitives as P

from jaxgreen._src.jaxpr.interpreter import RuleContext
from jaxgreen._src.jaxpr.registry import register
from jaxgreen._src.jaxpr.rules._util import is_complex, ops, priced, size


def _axis_size(ctx: RuleContext, axes) -> int:
  if isinstance(axes, str | int):
    axes = (axes,)
  n = 1
  for a in axes:
    if isinstance(a, int):  # positional axes (vmap-style) are reduced locally
      continue
    n *= ctx.axis_sizes.get(a, 1)
  return n


def _whole(x):
  return int(x) if float(x).is_integer() else x


def _allreduce(ctx: RuleContext, *args, axes=None, axis_name=None, **_):
  axes = axes if axes is not None else axis_name
  axes = axes if isinstance(axes, tuple) else (axes,)
  n = _axis_size(ctx, axes)
  local_axes = [ax for ax in axes if isinstance(ax, int)]
  name = {"pmax": "max", "pmin": "min", "unreduced_pmax": "max",
          "unreduced_pmin": "min"}.get(ctx.name, "add")
  total = ops()
  for x in args:
    e = size(x)
    steps: float = 0
    if local_axes:  # positional reduction first, inside the device
      kept = e // max(1, math.prod(x.shape[ax] for ax in local_axes))
      e, steps = kept, e - kept
    if n > 1:
      steps += (n - 1) * e / n
    total += priced(ctx.model, name, _whole(steps), is_complex(x))
  return total


register(P.psum_p, P.pmax_p, P.pmin_p)(_allreduce)
register("pxor")(_allreduce)  # jax >= 0.12.1: integers only, so integer operations
# psum inside shard_map with check_vma, reductions of "unreduced" arrays, and the start
# halves of asynchronous collectives (the done halves are on the zero-cost list).
register("psum_invariant", "unreduced_psum", "psum_start", "psum_invariant_start",
         "unreduced_psum_start", "unreduced_pmax", "unreduced_pmin")(_allreduce)


@register("reduce_scatter", "reduce_scatter_start", "unreduced_reduce_scatter",
          "unreduced_reduce_scatter_start", "pmax_scatter", "pmin_scatter")
def _reduce_scatter(ctx: RuleContext, x, *, axis_name=None, axes=None, **_):
  n = _axis_size(ctx, axis_name if axis_name is not None else axes)
  total = (n - 1) * size(x) / n if n > 1 else 0
  name = {"pmax_scatter": "max", "pmin_scatter": "min"}.get(ctx.name, "add")
  return priced(ctx.model, name, _whole(total), is_complex(x))


def _movement(ctx: RuleContext, *args, **_):
  return ops()


register(P.all_gather_p, P.all_to_all_p, P.ppermute_p, "all_gather_invariant",
         P.ragged_all_to_all_p)(_movement)


@register("shard_map")
def _shard_map(ctx: RuleContext, *args, jaxpr, mesh, **params):
  manual = params.get("newly_manual_axes") or params.get("manual_axes") or mesh.axis_names
  sizes = dict(zip(mesh.axis_names, mesh.axis_sizes, strict=True))
  devices = math.prod(sizes[a] for a in manual)
  return ctx.walk(jaxpr, axis_sizes=sizes) * devices


@register("xla_pmap")
def _pmap(ctx: RuleContext, *args, call_jaxpr, axis_name, axis_size, **_):
  return ctx.walk(call_jaxpr, axis_sizes={axis_name: axis_size}) * axis_size
