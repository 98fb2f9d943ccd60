"""Counting the programs XLA sees: StableHLO (lowered) and optimized HLO (compiled).

Layout, one job per module, imports going down the list:

* :mod:`~jaxgreen._src.hlo.ir`: arrays, instructions, computations, modules; typed attribute
  accessors;
* :mod:`~jaxgreen._src.hlo.parse`: HLO text -> IR; :mod:`~jaxgreen._src.hlo.stablehlo`: MLIR -> IR
  (and the lowered stage's entry points);
* :mod:`~jaxgreen._src.hlo.trips`: while-loop trip counts, constant branch indices;
* :mod:`~jaxgreen._src.hlo.walk`: the one traversal (fusion, call, async, while x trips,
  conditional);
* :mod:`~jaxgreen._src.hlo.xla`: XLA's HloCostAnalysis rules and the named causes;
  :mod:`~jaxgreen._src.hlo.tally`: the sums of a counting walk;
* :mod:`~jaxgreen._src.hlo.pricing`, :mod:`~jaxgreen._src.hlo.dense`,
  :mod:`~jaxgreen._src.hlo.reductions`, :mod:`~jaxgreen._src.hlo.special`: the FPO rules;
  :mod:`~jaxgreen._src.hlo.kernels`: Pallas/Mosaic/Triton kernel custom calls mapped back to
  their jaxpr count (or the author's estimate); :mod:`~jaxgreen._src.hlo.attention`: cuDNN
  fused attention priced from its shapes;
  :mod:`~jaxgreen._src.hlo.count`: the opcode table and the count of a module;
* :mod:`~jaxgreen._src.hlo.compiled`: the compiled stage's entry points;
* :mod:`~jaxgreen._src.hlo.traffic`: HBM traffic and collectives of a compiled module.
"""

from jaxgreen._src.hlo.compiled import count_compiled as count_compiled
from jaxgreen._src.hlo.compiled import count_hlo_text as count_hlo_text
from jaxgreen._src.hlo.count import count_module as count_module
from jaxgreen._src.hlo.ir import HloParseError as HloParseError
from jaxgreen._src.hlo.parse import parse_module as parse_module
from jaxgreen._src.hlo.stablehlo import count_lowered as count_lowered
from jaxgreen._src.hlo.tally import HloCount as HloCount
from jaxgreen._src.hlo.tally import LoopInfo as LoopInfo
from jaxgreen._src.hlo.xla import CAUSES as CAUSES

__all__ = ["CAUSES", "HloCount", "HloParseError", "LoopInfo", "count_compiled",
           "count_hlo_text", "count_lowered", "count_module", "parse_module"]
