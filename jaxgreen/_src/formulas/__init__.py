"""The counting conventions, one formula each, shared by every stage.

The jaxpr rules (:mod:`jaxgreen._src.jaxpr.rules`) and the HLO counter
(:mod:`jaxgreen._src.hlo.count`,
which counts the compiled HLO and the lowered StableHLO alike) read shapes and
attributes in their own way, then call these functions for the arithmetic. A
convention changes here, once, and every stage follows; ``tests/hlo/test_stage_parity.py``
checks that single-operation programs count the same at every stage.

Every function is pure integer arithmetic on shapes (no jax import), so it is exact.
One module per family; every name is importable from ``jaxgreen._src.formulas``:

* :mod:`~jaxgreen._src.formulas.elementwise`: the default price table, complex-operand
  recipes, integer powers;
* :mod:`~jaxgreen._src.formulas.contraction`: dot products and ragged dots;
* :mod:`~jaxgreen._src.formulas.conv`: convolutions;
* :mod:`~jaxgreen._src.formulas.reductions`: reductions, scans, windows, sorting, top-k;
* :mod:`~jaxgreen._src.formulas.control_flow`: loop trip counts, cond/switch branches;
* :mod:`~jaxgreen._src.formulas.random`: random-bit generators (integer work).

>>> dot_counts(out_elems=8 * 4, k=16)  # (ADD, MUL) of an (8, 16) @ (16, 4) product
(480, 512)
"""

from jaxgreen._src.formulas.contraction import contraction_counts as contraction_counts
from jaxgreen._src.formulas.contraction import dot_counts as dot_counts
from jaxgreen._src.formulas.contraction import ragged_dot_counts as ragged_dot_counts
from jaxgreen._src.formulas.control_flow import MIRROR as MIRROR
from jaxgreen._src.formulas.control_flow import counted_loop_trips as counted_loop_trips
from jaxgreen._src.formulas.control_flow import loop_factors as loop_factors
from jaxgreen._src.formulas.control_flow import loop_trips as loop_trips
from jaxgreen._src.formulas.control_flow import pick_branches as pick_branches
from jaxgreen._src.formulas.conv import ConvCounts as ConvCounts
from jaxgreen._src.formulas.conv import conv_counts as conv_counts
from jaxgreen._src.formulas.conv import conv_dim_products as conv_dim_products
from jaxgreen._src.formulas.conv import conv_dim_taps as conv_dim_taps
from jaxgreen._src.formulas.conv import conv_filter_grad_dim as conv_filter_grad_dim
from jaxgreen._src.formulas.conv import conv_input_grad_dim as conv_input_grad_dim
from jaxgreen._src.formulas.conv import transposed_kind as transposed_kind
from jaxgreen._src.formulas.elementwise import BITWISE as BITWISE
from jaxgreen._src.formulas.elementwise import DEFAULT_PRICES as DEFAULT_PRICES
from jaxgreen._src.formulas.elementwise import PRICE_TABLE as PRICE_TABLE
from jaxgreen._src.formulas.elementwise import TRANSCENDENTALS as TRANSCENDENTALS
from jaxgreen._src.formulas.elementwise import ZERO_ELEMENTWISE as ZERO_ELEMENTWISE
from jaxgreen._src.formulas.elementwise import Price as Price
from jaxgreen._src.formulas.elementwise import PriceModel as PriceModel
from jaxgreen._src.formulas.elementwise import complex_price as complex_price
from jaxgreen._src.formulas.elementwise import elementwise_price as elementwise_price
from jaxgreen._src.formulas.elementwise import integer_pow_muls as integer_pow_muls
from jaxgreen._src.formulas.elementwise import logaddexp_price as logaddexp_price
from jaxgreen._src.formulas.random import PHILOX2_OPS_PER_BLOCK as PHILOX2_OPS_PER_BLOCK
from jaxgreen._src.formulas.random import PHILOX4_OPS_PER_BLOCK as PHILOX4_OPS_PER_BLOCK
from jaxgreen._src.formulas.random import THREEFRY4_OPS_PER_BLOCK as THREEFRY4_OPS_PER_BLOCK
from jaxgreen._src.formulas.random import THREEFRY_OPS_PER_PAIR as THREEFRY_OPS_PER_PAIR
from jaxgreen._src.formulas.random import rng_bit_generator_ops as rng_bit_generator_ops
from jaxgreen._src.formulas.random import rng_uniform_ops as rng_uniform_ops
from jaxgreen._src.formulas.random import threefry_ops as threefry_ops
from jaxgreen._src.formulas.reductions import clog2 as clog2
from jaxgreen._src.formulas.reductions import prefix_window_axis as prefix_window_axis
from jaxgreen._src.formulas.reductions import reduce_steps as reduce_steps
from jaxgreen._src.formulas.reductions import scan_steps as scan_steps
from jaxgreen._src.formulas.reductions import sort_compares as sort_compares
from jaxgreen._src.formulas.reductions import top_k_compares as top_k_compares
from jaxgreen._src.formulas.reductions import window_reduce_steps as window_reduce_steps
