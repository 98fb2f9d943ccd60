"""Counting the programs XLA sees: StableHLO (lowered) and optimized HLO (compiled).

``count_lowered(f)(*args)`` and ``count_compiled(f, target=...)(*args)`` count a function;
``count_hlo_text`` and ``parse_module`` + ``count_module`` count HLO text from anywhere
(an XLA dump, another framework), with ``kernels=kernel_table(f, *args)`` for the Pallas
kernels it calls. ``CAUSES`` names the differences
:func:`jaxgreen.reconcile` explains between jaxgreen's count and XLA's ``cost_analysis()``.
"""

from jaxgreen._src.api import kernel_table as kernel_table
from jaxgreen._src.hlo import CAUSES as CAUSES
from jaxgreen._src.hlo import HloCount as HloCount
from jaxgreen._src.hlo import HloParseError as HloParseError
from jaxgreen._src.hlo import LoopInfo as LoopInfo
from jaxgreen._src.hlo import count_compiled as count_compiled
from jaxgreen._src.hlo import count_hlo_text as count_hlo_text
from jaxgreen._src.hlo import count_lowered as count_lowered
from jaxgreen._src.hlo import count_module as count_module
from jaxgreen._src.hlo import parse_module as parse_module

__all__ = ["CAUSES", "HloCount", "HloParseError", "LoopInfo", "count_compiled",
           "count_hlo_text", "count_lowered", "count_module", "kernel_table", "parse_module"]
