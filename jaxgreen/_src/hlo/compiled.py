"""Counts the optimized HLO of a compiled executable (``compiled.as_text()``).

The text is read by :mod:`jaxgreen._src.hlo.parse` and counted by
:mod:`jaxgreen._src.hlo.count`, with the same conventions and
:class:`~jaxgreen.CostModel` prices as the jaxpr counter, applied to what the compiler
actually kept: fusions and called computations are walked, ``while`` bodies multiplied
by the trip count (``known_trip_count`` where the compiler emits it, else derived from
the loop's induction variable, :mod:`jaxgreen._src.hlo.trips`), ``conditional`` takes the
costliest branch, cuBLAS/cuDNN/oneDNN GEMM and convolution custom calls are priced from
their shapes, Pallas kernels are mapped back to their jaxpr count
(:mod:`jaxgreen._src.hlo.kernels`), and any other custom call is listed in ``Cost.uncounted``.

Alongside, the walk replays XLA's own ``HloCostAnalysis`` rules per instruction and
files every per-instruction difference under a named cause (:mod:`jaxgreen._src.hlo.xla`);
this is what lets :mod:`jaxgreen._src.reconciliation` explain XLA's number exactly.

Example::

  compiled = jax.jit(f).lower(x).compile()
  jaxgreen._src.hlo.count_compiled(compiled).cost.fpo
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jaxgreen._src.cost_model import CostModel
from jaxgreen._src.hlo.count import count_module
from jaxgreen._src.hlo.ir import HloParseError
from jaxgreen._src.hlo.kernels import KernelTable
from jaxgreen._src.hlo.parse import parse_module
from jaxgreen._src.hlo.tally import HloCount, LoopInfo
from jaxgreen._src.hlo.xla import CAUSES

__all__ = ["CAUSES", "HloCount", "LoopInfo", "count_compiled", "count_hlo_text",
           "count_module"]


def count_hlo_text(text: str, *, cost_model: CostModel | None = None,
                   cond: str = "max", kernels: KernelTable | None = None,
                   trip_counts: Mapping[str, int] | int | None = None) -> HloCount:
  """Counts the entry computation of an HLO module given as text.

  Args:
    text: ``compiled.as_text()`` (optimized HLO) or ``lowered.as_text("hlo")``.
    cost_model: prices of non-elementary operations; default ``CostModel()``.
    cond: ``"max"`` (default), ``"min"`` or ``"mean"`` for conditionals, as in
      :func:`jaxgreen.count`.
    kernels: the program's Pallas kernels counted at the jaxpr stage
      (:class:`~jaxgreen._src.hlo.kernels.KernelTable`, as :func:`jaxgreen._src.api.kernel_table`
      builds it); without it a kernel custom call is its author's ``cost_estimate``,
      marked inexact, or uncounted.
    trip_counts: trip counts of loops the module does not prove (as
      :func:`jaxgreen._src.hlo.count.count_module`).

  Returns:
    An :class:`HloCount` (per device for an SPMD-partitioned module).

  Example:
    >>> count_hlo_text('''HloModule m
    ... ENTRY %main (p: f32[4]) -> f32[4] {
    ...   %p = f32[4]{0} parameter(0)
    ...   ROOT %e = f32[4]{0} exponential(f32[4]{0} %p)
    ... }''').xla_transcendentals
    4
  """
  module = parse_module(text)
  if not module.computations:
    raise HloParseError("count_hlo_text(text=...): no HLO computation found; pass "
                        "compiled.as_text() or lowered.as_text('hlo')")
  return count_module(module, cost_model=cost_model, cond=cond, kernels=kernels,
                      trip_counts=trip_counts)


def count_compiled(compiled: Any, *, cost_model: CostModel | None = None,
                   cond: str = "max", kernels: KernelTable | None = None,
                   trip_counts: Mapping[str, int] | int | None = None) -> HloCount:
  """Counts a ``jax.stages.Compiled`` from its optimized HLO (see :func:`count_hlo_text`).

  Example::

    c = jax.jit(lambda a, b: a @ b).lower(x, y).compile()
    count_compiled(c).cost.muls  # M*N*K
  """
  text = compiled.as_text()
  if not isinstance(text, str) or not text:
    raise ValueError("count_compiled(compiled=...): this executable has no HLO text; pass "
                     "the result of jax.jit(f).lower(*args).compile()")
  return count_hlo_text(text, cost_model=cost_model, cond=cond, kernels=kernels,
                        trip_counts=trip_counts)
