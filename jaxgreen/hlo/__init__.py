"""Counting the programs XLA sees: StableHLO (lowered) and optimized HLO (compiled)."""

from jaxgreen.hlo.compiled import HloCount as HloCount
from jaxgreen.hlo.compiled import count_compiled as count_compiled
from jaxgreen.hlo.compiled import count_hlo_text as count_hlo_text
from jaxgreen.hlo.stablehlo import count_lowered as count_lowered

__all__ = ["HloCount", "count_compiled", "count_hlo_text", "count_lowered"]
