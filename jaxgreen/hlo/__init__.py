"""Counting the programs XLA sees: StableHLO (lowered) and optimized HLO (compiled).

Layout, one job per module, imports going down the list:

* :mod:`~jaxgreen.hlo.ir`: arrays, instructions, computations, modules; typed attribute
  accessors;
* :mod:`~jaxgreen.hlo.parse`: HLO text -> IR; :mod:`~jaxgreen.hlo.stablehlo`: MLIR -> IR
  (and the lowered stage's entry points);
* :mod:`~jaxgreen.hlo.trips`: while-loop trip counts, constant branch indices;
* :mod:`~jaxgreen.hlo.walk`: the one traversal (fusion, call, async, while x trips,
  conditional);
* :mod:`~jaxgreen.hlo.xla`: XLA's HloCostAnalysis rules and the named causes;
  :mod:`~jaxgreen.hlo.tally`: the sums of a counting walk;
* :mod:`~jaxgreen.hlo.pricing`, :mod:`~jaxgreen.hlo.dense`,
  :mod:`~jaxgreen.hlo.reductions`, :mod:`~jaxgreen.hlo.special`: the FPO rules;
  :mod:`~jaxgreen.hlo.kernels`: Pallas/Mosaic/Triton kernel custom calls mapped back to
  their jaxpr count (or the author's estimate); :mod:`~jaxgreen.hlo.attention`: cuDNN
  fused attention priced from its shapes;
  :mod:`~jaxgreen.hlo.count`: the opcode table and the count of a module;
* :mod:`~jaxgreen.hlo.compiled`: the compiled stage's entry points;
* :mod:`~jaxgreen.hlo.traffic`: HBM traffic and collectives of a compiled module.
"""

from jaxgreen.hlo.compiled import count_compiled as count_compiled
from jaxgreen.hlo.compiled import count_hlo_text as count_hlo_text
from jaxgreen.hlo.count import count_module as count_module
from jaxgreen.hlo.ir import HloParseError as HloParseError
from jaxgreen.hlo.parse import parse_module as parse_module
from jaxgreen.hlo.stablehlo import count_lowered as count_lowered
from jaxgreen.hlo.tally import HloCount as HloCount
from jaxgreen.hlo.tally import LoopInfo as LoopInfo
from jaxgreen.hlo.xla import CAUSES as CAUSES

__all__ = ["CAUSES", "HloCount", "HloParseError", "LoopInfo", "count_compiled",
           "count_hlo_text", "count_lowered", "count_module", "parse_module"]
