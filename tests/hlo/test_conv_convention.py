"""The convolution convention, at every stage (jaxgreen._src.formulas.conv_counts).

Each output of an ordinary convolution multiplies the kernel taps of its window that land
on a real input element or on edge padding (torchvision's forward convention);
``rhs_dilation`` adds no taps. A transposed convolution (lhs-dilated, or at stride 1 with
an output longer than its input) counts each real input element times each kernel tap
(torch's FlopCounterMode convention), so a convolution's input gradient counts exactly
its forward's taps, or fewer: never more, whatever the stride, padding and dilation.
"""

import itertools
import math
import random

import jax
import jax.numpy as jnp
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jax import lax

import jaxgreen
from jaxgreen._src.formulas import conv_counts, conv_dim_taps, conv_input_grad_dim, transposed_kind
from jaxgreen._src.hlo import count_compiled, count_hlo_text
from jaxgreen._src.hlo.xla import FMA, PADDING

S = jax.ShapeDtypeStruct
F32 = jnp.float32
STAGES = ("jaxpr", "lowered", "compiled")


def _by_layout(n, k, o, stride, lo, hi, lhs_dil, rhs_dil):
  """Independent count: lay out the dilated, padded input as a list of cells and
  slide every window over it."""
  cells = ["pad"] * max(0, lo)
  for m in range(n):
    cells += (["hole"] * (lhs_dil - 1) if m else []) + ["real"]
  cells += ["pad"] * max(0, hi)
  start = -min(0, lo)  # negative padding crops the front
  cells = cells[start:len(cells) + min(0, hi)]
  taps = valid = live = 0
  for i in range(o):
    window = [cells[i * stride + j * rhs_dil] for j in range(k)]
    t = sum(c != "hole" for c in window)
    taps, valid, live = taps + t, valid + window.count("real"), live + (t > 0)
  return taps, valid, live


def test_per_dimension_taps_match_a_layout_of_the_input():
  rng = random.Random(0)
  checked = 0
  while checked < 3000:
    n, k = rng.randint(1, 9), rng.randint(1, 5)
    stride, lhs_dil, rhs_dil = rng.randint(1, 4), rng.randint(1, 4), rng.randint(1, 3)
    lo, hi = rng.randint(-2, 6), rng.randint(-2, 6)
    length = lo + (n - 1) * lhs_dil + 1 + hi
    span = (k - 1) * rhs_dil + 1
    if length < span:
      continue
    o = (length - span) // stride + 1
    assert conv_dim_taps(n, k, o, stride, lo, hi, lhs_dil, rhs_dil) == _by_layout(
        n, k, o, stride, lo, hi, lhs_dil, rhs_dil), (n, k, o, stride, lo, hi, lhs_dil, rhs_dil)
    checked += 1


def test_huge_windows_are_counted_in_closed_form():
  # XLA's ConvolutionExtreme2 (hlo_cost_analysis_test.cc): input 1, kernel 2**19 padded
  # 2**19 - 1 on both sides, so 2**19 outputs. Every tap is real or padding: 2**38 taps,
  # of which one per output is the real element (XLA counts 2 * 2**19 flops).
  big = 512 * 1024
  assert conv_dim_taps(1, big, big, 1, big - 1, big - 1) == (big * big, big, big)


def test_xla_base_dilated_convolution():
  # XLA's hlo_cost_analysis_test.cc, BaseDilatedConvolution: input 1x1x10x20, kernel
  # 1x1x3x3, stride 1, padding 1 on each side, lhs_dilation (3, 5), rhs_dilation (7, 11);
  # XLA expects flop_count 1472 = 2 flops x 736 taps on real input.
  def f(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), lhs_dilation=(3, 5),
                                    rhs_dilation=(7, 11))

  args = (S((1, 1, 10, 20), F32), S((1, 1, 3, 3), F32))
  # Rows: 10 inputs at 0, 3, ..., 27, padded to -1..28; kernel taps at 0, 7, 14; 16 outputs.
  # 16 (output, tap) pairs are on real rows, 2 on the padding (-1 and 28), 30 on holes.
  # Columns: 20 inputs at 0, 5, ..., 95, padded to -1..96; taps at 0, 11, 22; 76 outputs.
  # 46 pairs on real columns, 2 on the padding, 180 on holes.
  # An lhs-dilated (transposed) convolution: every input element times every tap,
  # (10 x 3) * (20 x 3) = 1,800 MUL, as torch's FlopCounterMode counts a transposed
  # convolution (the pairs that land outside the 16 x 76 outputs included); XLA: the
  # 16 * 46 = 736 pairs on real input. Every output reached by an input element holds one
  # of them (16 rows x 46 columns), so ADD = 1,800 - 736.
  assert conv_dim_taps(10, 3, 16, 1, 1, 1, 3, 7) == (18, 16, 16)
  assert conv_dim_taps(20, 3, 76, 1, 1, 1, 5, 11) == (48, 46, 46)
  c = jaxgreen.count(f)(*args)
  assert (c.muls, c.adds) == (1800, 1800 - 736)
  h = count_compiled(jax.jit(f).lower(*args).compile())
  assert (h.cost.muls, h.cost.adds) == (1800, 1800 - 736)
  assert h.xla_flops == 1472  # XLA's own figure, replayed
  assert h.causes[PADDING] == 2 * (1800 - 736)  # products off real input, 2 flops each
  assert h.causes[FMA] == -736  # XLA: 2 per product; jaxgreen one ADD fewer per output


def _fwd(x, w):
  return lax.conv_general_dilated(x, w, (2, 2), "SAME")


def _dx(x, w):
  return jax.grad(lambda x: _fwd(x, w).sum())(x)


def _dw(x, w):
  return jax.grad(lambda w: _fwd(x, w).sum())(w)


def _conv_counts(f, *args, stage="jaxpr"):
  c = jaxgreen.count(f, stage=stage)(*args)
  row = c.by_primitive["conv_general_dilated"]
  return row.muls, row.adds


def test_input_gradient_of_a_strided_conv_costs_the_forward_conv():
  x, w = S((2, 8, 32, 32), F32), S((16, 8, 3, 3), F32)
  # Forward, per spatial dim: 32 inputs, stride 2, SAME pads (0, 1): 16 outputs x 3 taps
  # = 48 (47 on input, 1 on padding). MUL = batch 2 x C_out 16 x C_in 8 x 48^2.
  fwd = 2 * 16 * 8 * 48**2
  assert _conv_counts(_fwd, x, w)[0] == fwd
  # d(input): dy's 16 rows dilated by 2, a transposed convolution: each of dy's 16
  # elements times each of the 3 taps = 48 per dim, the forward's taps (torch counts the
  # input gradient so). The window view counted 51 (the 47 real pairs and 4 taps on
  # its edge padding: 1.13 x the forward); the dense count 32 x 3 = 96 (4 x).
  assert _conv_counts(_dx, x, w)[0] == fwd
  # d(weight): every weight sums over the 2 x 16 x 16 (batch, output) positions of its
  # tap; the same 48^2 (tap, output) pairs per channel pair as the forward conv.
  assert _conv_counts(_dw, x, w) == (fwd, fwd - 16 * 8 * 3 * 3)


def test_conv_transpose_stride_2():
  y, k = S((2, 8, 16, 16), F32), S((3, 3, 8, 16), F32)

  def ct(y, k):
    return lax.conv_transpose(y, k, (2, 2), "SAME", dimension_numbers=("NCHW", "HWIO", "NCHW"))

  # torch.utils.flop_counter (conv_flop_count, transposed=True) counts
  # x_spatial x kernel x C_in x C_out x batch MACs: (16 x 3)^2 x 8 x 16 x 2 = 589,824;
  # jaxgreen the same (the dense count was 32^2 x 9 x 8 x 16 x 2 = 2,359,296, 4 x torch's).
  torch_macs = (16 * 3) ** 2 * 8 * 16 * 2
  assert _conv_counts(ct, y, k)[0] == torch_macs


@pytest.mark.parametrize("name", ["forward", "d_input", "d_weight", "conv_transpose",
                                  "grouped_d_input", "grouped_d_weight"])
def test_stages_agree(name):
  x, w = S((1, 4, 12, 12), F32), S((8, 4, 3, 3), F32)
  wg = S((8, 2, 3, 3), F32)  # feature_group_count = 2

  def grouped(x, w):
    return lax.conv_general_dilated(x, w, (2, 2), ((1, 1), (0, 1)), feature_group_count=2)

  cases = {
      "forward": (_fwd, (x, w)),
      "d_input": (_dx, (x, w)),
      "d_weight": (_dw, (x, w)),
      "conv_transpose": (lambda y, k: lax.conv_transpose(
          y, k, (2, 3), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW")),
          (S((1, 4, 5, 5), F32), S((6, 4, 3, 2), F32))),
      "grouped_d_input": (lambda x, w: jax.grad(lambda x: grouped(x, w).sum())(x), (x, wg)),
      "grouped_d_weight": (lambda x, w: jax.grad(lambda w: grouped(x, w).sum())(w), (x, wg)),
  }
  f, args = cases[name]
  counts = [_conv_counts(f, *args, stage=s) for s in STAGES]
  assert counts[0] == counts[1] == counts[2], dict(zip(STAGES, counts, strict=True))


_CUDNN = """
HloModule m
ENTRY %main (a: f32[@A@], b: f32[@B@]) -> f32[@R@] {
  %a = f32[@A@]{3,2,1,0} parameter(0)
  %b = f32[@B@]{3,2,1,0} parameter(1)
  %cc = (f32[@R@]{3,2,1,0}, u8[0]{0}) custom-call(%a, %b), @ATTRS@
  ROOT %r = f32[@R@]{3,2,1,0} get-tuple-element(%cc), index=0
}
"""


@pytest.mark.parametrize("kind,f", [("BackwardInput", _dx), ("BackwardFilter", _dw),
                                     ("Forward", _fwd)])
def test_cudnn_calls_count_as_the_convolutions_jax_wrote(kind, f):
  # cuDNN's calls carry the forward conv's window and dim_labels (input, filter ->
  # output); BackwardInput computes the input from (output grad, filter), BackwardFilter
  # the filter from (input, output grad) (XLA's gpu_conv_runner).
  x, w, y = "2,8,16,16", "16,8,3,3", "2,16,8,8"
  a, b, r = {"Forward": (x, w, y), "BackwardInput": (y, w, x),
             "BackwardFilter": (x, y, w)}[kind]
  attrs = ("window={size=3x3 stride=2x2 pad=0_1x0_1}, dim_labels=bf01_oi01->bf01, "
           f'custom_call_target="__cudnn$conv{kind}"')
  text = _CUDNN.replace("@A@", a).replace("@B@", b).replace("@R@", r).replace("@ATTRS@", attrs)
  h = count_hlo_text(text)
  assert not h.cost.uncounted
  expected = _conv_counts(f, S((2, 8, 16, 16), F32), S((16, 8, 3, 3), F32))
  assert (h.cost.muls, h.cost.adds) == expected


def test_conv_counts_complex_and_empty():
  # complex: each product is 4 MUL + 2 ADD and each accumulation 2 ADD
  assert conv_counts(6, 2, [(4, 3, 2, 1, 0, 0, 1, 1)], complex_=True) == (
      2 * 36 + 2 * (36 - 6), 4 * 36, 36, 36)
  assert conv_counts(0, 2, [(4, 3, 0, 1, 0, 0, 1, 1)]) == (0, 0, 0, 0)
  # the input-gradient window of a stride-2, k=3, SAME (0, 1) dimension of 32 inputs
  assert conv_input_grad_dim(32, 3, 16, 2, 0, 1) == (16, 3, 32, 1, 2, 1, 2, 1)


def test_lhs_dilation_only_outputs_on_holes_take_no_add():
  # 1-tap kernel over an input dilated by 3: two of every three outputs sit on holes.
  c = jaxgreen.count(lambda x, w: lax.conv_general_dilated(x, w, (1,), ((0, 0),),
                                                           lhs_dilation=(3,)))(
      S((1, 1, 4), F32), S((1, 1, 1), F32))
  assert (c.muls, c.adds) == (4, 0)  # 4 real outputs of one product each; 6 empty ones


@pytest.mark.parametrize("lhs_dil,rhs_dil", list(itertools.product([1, 2], [1, 3])))
def test_rhs_dilation_adds_no_taps(lhs_dil, rhs_dil):
  def f(x, w):
    return lax.conv_general_dilated(x, w, (1,), ((1, 0),), lhs_dilation=(lhs_dil,),
                                    rhs_dilation=(rhs_dil,))

  c = jaxgreen.count(f)(S((1, 1, 6), F32), S((1, 1, 2), F32))
  out = jax.eval_shape(f, S((1, 1, 6), F32), S((1, 1, 2), F32)).shape[-1]
  if lhs_dil == 1:  # ordinary: both taps of every window (edge padding included)
    assert out <= 6 and c.muls == 2 * out
  else:  # transposed: each of the 6 input elements times each of the 2 taps
    assert c.muls == 6 * 2


# -- the input gradient never counts more than the forward ------------------------------

_dim = st.tuples(st.integers(1, 12), st.integers(1, 5), st.integers(1, 4), st.integers(-1, 5),
                 st.integers(-1, 5), st.integers(1, 3))  # n, k, stride, lo, hi, rhs dilation


def _out(n, k, s, lo, hi, r):
  return (n + lo + hi - (k - 1) * r - 1) // s + 1 if n + lo + hi >= (k - 1) * r + 1 else 0


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(_dim, min_size=1, max_size=3))
def test_input_gradient_never_counts_more_than_the_forward(dims):
  """Over strides, paddings (negative: cropping), rhs dilations, kernel sizes and 1-3
  spatial dims, as the formula sees them: the input gradient counts exactly the
  forward's taps when it is a transposed convolution or every stride is 1, else (a kernel
  longer than the map it scans) fewer."""
  outs = [_out(*d) for d in dims]
  assume(all(o > 0 for o in outs))
  pairs = list(zip(dims, outs, strict=True))
  fwd_dims = [(n, k, o, s, lo, hi, 1, r) for (n, k, s, lo, hi, r), o in pairs]
  dx_dims = [conv_input_grad_dim(n, k, o, s, lo, hi, r) for (n, k, s, lo, hi, r), o in pairs]
  fwd = conv_counts(math.prod(outs), 3, fwd_dims)
  dx = conv_counts(math.prod(d[0] for d in dims), 3, dx_dims)
  assert dx.muls <= fwd.muls
  assert dx.adds <= dx.muls
  if transposed_kind(dx_dims) == "scatter" or all(d[2] == 1 for d in dims):
    assert dx.muls == fwd.muls  # transposed, or every stride 1: exactly the forward


@settings(max_examples=40, deadline=None, derandomize=True)
@given(_dim, _dim, st.sampled_from([1, 2]))
def test_input_gradient_of_real_convs_at_most_the_forward(h, w, groups):
  """The same property on the convolutions jax writes (2-D, grouped or not), counted."""
  (n1, k1, s1, lo1, hi1, r1), (n2, k2, s2, lo2, hi2, r2) = h, w
  assume(min(lo1, hi1, lo2, hi2) >= 0 and _out(*h) > 0 and _out(*w) > 0)

  def fwd(x, w):
    return lax.conv_general_dilated(x, w, (s1, s2), ((lo1, hi1), (lo2, hi2)),
                                    rhs_dilation=(r1, r2), feature_group_count=groups)

  x, k = S((1, 2, n1, n2), F32), S((4, 2 // groups, k1, k2), F32)
  forward = _conv_counts(fwd, x, k)[0]
  dx = _conv_counts(lambda x, w: jax.grad(lambda x: fwd(x, w).sum())(x), x, k)[0]
  assert dx <= forward
  if (s1, s2) == (1, 1) or (k1 <= n1 and k2 <= n2):
    assert dx == forward  # every stride 1, or a transposed convolution: the forward's taps


def test_cudnn_weight_gradient_of_a_kernel_wider_than_the_map():
  # A 3x3 SAME conv on a 2x2 map: jax's weight gradient is a convolution of x (2 wide)
  # with dy (2 wide) padded (1, 1), 3 outputs per dim, at stride 1 and with an output
  # longer than its input: each dim counts x's 2 elements x dy's 2 = 4 (its 3 x 2 = 6
  # window taps capped). cuDNN's BackwardFilter call, which carries the forward's window,
  # counts the same.
  def dw(x, w):
    return jax.grad(lambda w: lax.conv_general_dilated(x, w, (1, 1), "SAME").sum())(w)

  x, w = S((1, 2, 2, 2), F32), S((3, 2, 3, 3), F32)
  muls = _conv_counts(dw, x, w)[0]
  assert muls == 3 * 2 * 4 * 4  # C_out x C_in x (2 x 2 per dim); the forward: 3·2·(2·3)²
  attrs = ("window={size=3x3 pad=1_1x1_1}, dim_labels=bf01_oi01->bf01, "
           'custom_call_target="__cudnn$convBackwardFilter"')
  text = (_CUDNN.replace("@A@", "1,2,2,2").replace("@B@", "1,3,2,2")
          .replace("@R@", "3,2,3,3").replace("@ATTRS@", attrs))
  h = count_hlo_text(text)
  assert (h.cost.muls, h.cost.adds) == _conv_counts(dw, x, w)
