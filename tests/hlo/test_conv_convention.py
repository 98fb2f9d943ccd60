"""The convolution convention, at every stage (jaxgreen.formulas.conv_counts).

Each output multiplies the kernel taps of its window that land on a real input element
or on edge padding (torchvision's forward convention); taps on the holes that
``lhs_dilation`` inserts between input elements never count, and ``rhs_dilation`` adds
no taps. So the input gradient of a strided convolution and ``conv_transpose`` cost
about what the forward convolution does, not stride**2 times more.
"""

import itertools
import random

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen
from jaxgreen.formulas import conv_counts, conv_dim_taps, conv_input_grad_dim
from jaxgreen.hlo import count_compiled, count_hlo_text
from jaxgreen.hlo.xla import FMA, PADDING

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
  # jaxgreen: (16 + 2) * (46 + 2) = 864 MUL (the dense count was 16*76*9 = 10,944);
  # XLA: 16 * 46 = 736 FMAs. Most outputs take a single product, so ADD = 864 - 736
  # outputs with at least one tap (16 rows x 46 columns) = 128.
  assert conv_dim_taps(10, 3, 16, 1, 1, 1, 3, 7) == (18, 16, 16)
  assert conv_dim_taps(20, 3, 76, 1, 1, 1, 5, 11) == (48, 46, 46)
  c = jaxgreen.count(f)(*args)
  assert (c.muls, c.adds) == (864, 128)
  h = count_compiled(jax.jit(f).lower(*args).compile())
  assert (h.cost.muls, h.cost.adds) == (864, 128)
  assert h.xla_flops == 1472  # XLA's own figure, replayed
  assert h.causes[PADDING] == 2 * (864 - 736)  # the 4 x 32 edge-padding products, 2 flops each
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


def test_input_gradient_of_a_strided_conv_costs_about_the_forward_conv():
  x, w = S((2, 8, 32, 32), F32), S((16, 8, 3, 3), F32)
  # Forward, per spatial dim: 32 inputs, stride 2, SAME pads (0, 1): 16 outputs x 3 taps
  # = 48 (47 on input, 1 on padding). MUL = batch 2 x C_out 16 x C_in 8 x 48^2.
  fwd = 2 * 16 * 8 * 48**2
  assert _conv_counts(_fwd, x, w)[0] == fwd
  # d(input): dy's 16 rows dilated by 2 (at 0, 2, ..., 30), padded (2, 1), 32 windows of
  # 3: the 47 real pairs of the forward conv, plus padding taps -2, -1 (windows 0, 0, 1)
  # and 31 (window 31) = 51. MUL = batch 2 x C_in 8 x C_out 16 x 51^2 (the dense
  # count, every tap of the dilated window, was 2 x 8 x 32^2 x 16 x 9 = 4 x fwd).
  dx = 2 * 8 * 16 * 51**2
  assert _conv_counts(_dx, x, w)[0] == dx
  assert 1 < dx / fwd < 1.15
  # d(weight): every weight sums over the 2 x 16 x 16 (batch, output) positions of its
  # tap; the same 48^2 (tap, output) pairs per channel pair as the forward conv.
  assert _conv_counts(_dw, x, w) == (fwd, fwd - 16 * 8 * 3 * 3)


def test_conv_transpose_stride_2():
  y, k = S((2, 8, 16, 16), F32), S((3, 3, 8, 16), F32)

  def ct(y, k):
    return lax.conv_transpose(y, k, (2, 2), "SAME", dimension_numbers=("NCHW", "HWIO", "NCHW"))

  # Per spatial dim: 16 inputs dilated by 2 (0, 2, ..., 30), padded (2, 1) by jax's SAME,
  # 32 outputs of 3 taps. On input: 16 x 3 - 1 (input 30's third window is past the
  # output) = 47; on padding: -2, -1 (windows 0, 0, 1) and 31 (window 31) = 4.
  # torch.utils.flop_counter (conv_flop_count, transposed=True) counts
  # x_spatial x kernel x C_in x C_out x batch MACs: (16 x 3)^2 x 8 x 16 x 2 = 589,824.
  torch_macs = (16 * 3) ** 2 * 8 * 16 * 2
  muls = 51**2 * 8 * 16 * 2  # 665,856 (the dense count was 32^2 x 9 x 8 x 16 x 2 =
  assert _conv_counts(ct, y, k)[0] == muls  # 2,359,296, 4 x torch's)
  assert (muls - torch_macs) == (51**2 - 48**2) * 8 * 16 * 2


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
    return lax.conv_general_dilated(x, w, (1,), ((4, 4),), lhs_dilation=(lhs_dil,),
                                    rhs_dilation=(rhs_dil,))

  c = jaxgreen.count(f)(S((1, 1, 6), F32), S((1, 1, 2), F32))
  out = jax.eval_shape(f, S((1, 1, 6), F32), S((1, 1, 2), F32)).shape[-1]
  taps = conv_dim_taps(6, 2, out, 1, 4, 4, lhs_dil, rhs_dil)[0]
  assert c.muls == taps <= 2 * out  # never more than the kernel's 2 taps per output
  if lhs_dil == 1:
    assert c.muls == 2 * out
