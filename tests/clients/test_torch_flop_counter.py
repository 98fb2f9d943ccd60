"""Cross-checks against PyTorch's `torch.utils.flop_counter.FlopCounterMode` on identical models.

FlopCounterMode (torch 2.13) counts only matmuls, convolutions and attention kernels, at
2 flops per multiply-add ("Should be 2 * k - 1 technically", its own comment), so its figure
is compared with 2x jaxgreen's MUL count of `dot_general` + `conv_general_dilated`. Its
conventions, read from torch/utils/flop_counter.py:

* mm / addmm / bmm: 2·M·N·K (a bias add is not counted);
* convolution: 2 · batch · out spatial · kernel spatial · C_out · C_in/groups, every window tap
  including padding; a transposed convolution uses the *input* spatial size instead (every
  input element times the whole kernel, including products that land in the cropped border
  `padding`);
* convolution_backward: ∂x as the transposed convolution of ∂y (so 2x the forward's taps,
  whatever the stride) and ∂W as a convolution of x with ∂y that leaves out the groups
  (groups x the true work for a grouped convolution);
* fused attention kernels: 2 bmm forward, 5 bmm backward (the scores are recomputed); the
  CPU flash kernel has no formula and counts 0, so attention here runs torch's math backend,
  which FlopCounterMode sees as bmm.

jaxgreen's convention is torch's: an ordinary convolution counts every window tap, edge
padding included; a transposed convolution (lhs-dilated, as `conv_transpose` and the input
gradient of a strided convolution run, or at stride 1 with an output longer than its
input, as the input gradient of an unpadded convolution runs) counts every input element
times the whole kernel. So ∂x counts exactly the forward's taps, as torch does; the only
gap left is torch's groups factor on ∂W. Torch tensors live on the meta device: nothing is
computed (but for one numerical check of the transposed convolutions).

The file is a little over 500 lines and kept whole: it is one cross-check against one peer
tool, and its paired models read together with the torch conventions listed above.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxgreen

torch = pytest.importorskip("torch")
F = torch.nn.functional
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.utils import flop_counter  # noqa: E402

S = jax.ShapeDtypeStruct
F32 = jnp.float32


def torch_flops(fn) -> int:
  with flop_counter.FlopCounterMode(display=False) as counter:
    fn()
  return counter.get_total_flops()


def matmul_muls(cost: jaxgreen.Cost) -> int:
  """MULs of jaxgreen's dot_general and conv_general_dilated: what FlopCounterMode sees."""
  assert cost.exact and not cost.uncounted
  return sum(cost.by_primitive[p].muls for p in ("dot_general", "conv_general_dilated")
             if p in cost.by_primitive)


def meta(*shape, grad=True):
  return torch.empty(*shape, device="meta", requires_grad=grad)


# -- taps of a convolution, one spatial dimension at a time ----------------------------


def _dim_taps(out: int, k: int, *, n_in: int, lo: int, stride: int = 1, dilation: int = 1,
              lhs_dilation: int = 1) -> tuple[int, int, int]:
  """(all, inside, real) (output, tap) pairs of one spatial dimension of a convolution whose
  n_in inputs are spread lhs_dilation apart and padded by `lo` in front: `inside` land
  within the dilated input (not on edge padding), `real` on an input element (not on a
  hole)."""
  span = (n_in - 1) * lhs_dilation + 1
  inside = real = 0
  for o in range(out):
    for j in range(k):
      q = o * stride + j * dilation - lo
      if 0 <= q < span:
        inside += 1
        real += q % lhs_dilation == 0
  return out * k, inside, real


def counted_taps(dims: list[tuple[int, int, int]]) -> int:
  """Window taps over all spatial dims: per dim, the taps not on a hole (on an input
  element or on edge padding), multiplied across dims; the shapes must be ones where no
  tap is both on padding in one dim and on a hole in another."""
  per_dim = math.prod(a - (i - r) for a, i, r in dims)
  total = math.prod(a for a, _, _ in dims)
  holes = math.prod(i for _, i, _ in dims) - math.prod(r for _, _, r in dims)
  assert total - holes == per_dim, "a tap is both on padding and on a hole: other shapes"
  return per_dim


# -- convolutions --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Conv:
  """torch.nn.functional.conv2d(x[b, cin, *n], w[cout, cin/groups, *k], ...)."""

  b: int
  cin: int
  n: tuple[int, int]
  cout: int
  k: tuple[int, int]
  stride: tuple[int, int] = (1, 1)
  pad: tuple[int, int] = (0, 0)
  dilation: tuple[int, int] = (1, 1)
  groups: int = 1

  @property
  def m(self) -> tuple[int, ...]:  # output spatial size
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
                 zip(self.n, self.k, self.stride, self.pad, self.dilation, strict=True))

  @property
  def macs(self) -> int:  # every window tap of the forward pass, padding included
    return self.b * self.cout * math.prod(self.m) * self.cin // self.groups * math.prod(self.k)

  def jax_fn(self):
    def conv(x, w):
      return lax.conv_general_dilated(
        x, w, self.stride, [(p, p) for p in self.pad], rhs_dilation=self.dilation,
        dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=self.groups)
    x = S((self.b, self.cin, *self.n), F32)
    w = S((self.cout, self.cin // self.groups, *self.k), F32)
    return conv, x, w

  def torch_fn(self, x, w):
    return F.conv2d(x, w, stride=self.stride, padding=self.pad, dilation=self.dilation,
                    groups=self.groups)


CONVS = {
  # stride 1, "same" padding: ∂x is the same convolution, with the forward's taps
  "same3x3": Conv(2, 4, (9, 9), 6, (3, 3), pad=(1, 1)),
  # stride 1, no padding: ∂x is a "full" convolution, counted transposed (∂y x kernel)
  "valid5x3": Conv(2, 3, (10, 8), 4, (5, 3)),
  "grouped": Conv(2, 8, (9, 9), 12, (3, 3), pad=(1, 1), groups=2),
  "depthwise": Conv(2, 8, (9, 9), 8, (3, 3), pad=(1, 1), groups=8),
  "dilated": Conv(2, 4, (11, 11), 6, (3, 3), pad=(2, 2), dilation=(2, 2)),
  # strided: ∂x runs on ∂y spread 2 apart, a transposed convolution (∂y x kernel)
  "stride2x1": Conv(2, 4, (11, 9), 6, (3, 3), stride=(2, 1), pad=(1, 2)),
  "stride2_full_pad": Conv(2, 4, (9, 9), 6, (3, 3), stride=(2, 2), pad=(2, 2)),
  "stride2_grouped": Conv(2, 8, (9, 9), 12, (3, 3), stride=(2, 2), pad=(2, 2), groups=4),
}


@pytest.mark.parametrize("name", list(CONVS))
def test_conv_forward(name):
  c = CONVS[name]
  fn, x, w = c.jax_fn()
  assert jax.eval_shape(fn, x, w).shape == c.torch_fn(meta(*x.shape), meta(*w.shape)).shape
  muls = matmul_muls(jaxgreen.count(fn)(x, w))
  assert muls == c.macs  # b·cout·∏m · cin/groups·∏k
  # both count every window tap, padding included
  assert torch_flops(lambda: c.torch_fn(meta(*x.shape), meta(*w.shape))) == 2 * muls


@pytest.mark.parametrize("name", list(CONVS))
def test_conv_backward(name):
  c = CONVS[name]
  fn, x, w = c.jax_fn()
  g = S((c.b, c.cout, *c.m), F32)

  def backward(x, w, g):  # ∂x and ∂W; the forward result is unused and dropped
    return jax.vjp(fn, x, w)[1](g)

  muls = matmul_muls(jaxgreen.count(backward)(x, w, g))
  assert muls == 2 * c.macs  # ∂W: the forward's taps; ∂x: the forward's taps too

  tx, tw = meta(*x.shape), meta(*w.shape)
  y = c.torch_fn(tx, tw)
  peer = torch_flops(lambda: y.backward(torch.empty_like(y)))
  assert peer == 2 * (c.macs + c.groups * c.macs)  # ∂x: the forward's taps; ∂W: x groups
  assert muls == peer // 2 - (c.groups - 1) * c.macs  # equal once torch's groups are out


def test_strided_input_grad_by_hand():
  # Conv(9x9, k=3, stride 2, pad 2): ∂y is 6x6 (13-wide padded input, windows at 0, 2, .., 10).
  # jax's ∂x spreads ∂y to 11 wide (holes at odd positions), pads it by k − 1 − 2 = 0, and
  # slides the flipped kernel over it: 9 outputs x 3 taps = 27 per dim, of which 14 land
  # on an element of ∂y (outputs 0, 2, .., 8 see 2, and 1, 3, .., 7 see 1: 5·2 + 4·1).
  # A transposed convolution counts ∂y's 6 elements x 3 taps = 18 per dim: the forward's
  # taps (6 outputs x 3, 4 of them on its padding), as torch counts ∂x.
  c = CONVS["stride2_full_pad"]
  assert c.m == (6, 6)
  assert _dim_taps(9, 3, n_in=6, lo=0, lhs_dilation=2) == (27, 27, 14)
  fn, x, w = c.jax_fn()
  g = S((2, 6, 6, 6), F32)
  dx = jaxgreen.count(lambda w, g: jax.vjp(lambda x: fn(x, w), x)[1](g))(w, g)
  assert matmul_muls(dx) == 2 * 4 * 6 * 18 * 18  # b·cin·cout·(∂y elements x taps)²
  y = c.torch_fn(meta(2, 4, 9, 9), meta(6, 4, 3, 3, grad=False))
  assert torch_flops(lambda: y.backward(torch.empty_like(y))) == 2 * matmul_muls(dx)


# -- transposed convolutions ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConvT:
  """torch.nn.functional.conv_transpose{1,2}d(x[b, cin, *n], w[cin, cout/groups, *k], ...)."""

  b: int
  cin: int
  n: tuple[int, ...]
  cout: int
  k: tuple[int, ...]
  stride: tuple[int, ...]
  pad: tuple[int, ...]
  groups: int = 1

  @property
  def out(self) -> tuple[int, ...]:
    return tuple((n - 1) * s - 2 * p + k
                 for n, k, s, p in zip(self.n, self.k, self.stride, self.pad, strict=True))

  def window_taps(self) -> int:
    """Window taps of the convolution jax runs: x spread `stride` apart, padded by
    k − 1 − pad, one output per element of the result (holes left out)."""
    return counted_taps([_dim_taps(o, k, n_in=n, lo=k - 1 - p, lhs_dilation=s)
                         for o, n, k, s, p in zip(self.out, self.n, self.k, self.stride,
                                                  self.pad, strict=True)])

  @property
  def every_product(self) -> int:
    """torch's count: every input element times the whole kernel, per channel pair."""
    return self.b * self.cin * (self.cout // self.groups) * math.prod(self.n) * math.prod(
      self.k)

  def jax_fn(self):
    nd = len(self.n)
    spec = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW")}[nd]
    g, cin, cout = self.groups, self.cin, self.cout

    def conv_transpose(x, w):
      # torch's kernel [cin, cout/g, *k] as the kernel of the equivalent convolution,
      # [cout, cin/g, *k], flipped in space: data movement only
      w = w.reshape(g, cin // g, cout // g, *self.k).swapaxes(1, 2)
      w = jnp.flip(w.reshape(cout, cin // g, *self.k), axis=tuple(range(2, 2 + nd)))
      return lax.conv_general_dilated(
        x, w, (1,) * nd, [(k - 1 - p, k - 1 - p) for k, p in zip(self.k, self.pad, strict=True)],
        lhs_dilation=self.stride, dimension_numbers=spec, feature_group_count=g)

    return conv_transpose, S((self.b, cin, *self.n), F32), S((cin, cout // g, *self.k), F32)

  def torch_fn(self, x, w):
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d}[len(self.n)]
    return fn(x, w, stride=self.stride, padding=self.pad, groups=self.groups)


CONV_TRANSPOSES = {
  # the usual 2x upsampling
  "k2s2_1d": ConvT(2, 8, (7,), 6, (2,), (2,), (0,)),
  # pad = k − 1: no edge padding at all; the products cropped away count too
  "k3s2p2": ConvT(2, 8, (5, 5), 6, (3, 3), (2, 2), (2, 2)),
  "k3s2x1": ConvT(2, 8, (5, 6), 6, (3, 3), (2, 1), (1, 2)),
  "k3s2p2_grouped": ConvT(2, 8, (5, 5), 6, (3, 3), (2, 2), (2, 2), groups=2),
}


@pytest.mark.parametrize("name", list(CONV_TRANSPOSES))
def test_conv_transpose(name):
  c = CONV_TRANSPOSES[name]
  fn, x, w = c.jax_fn()
  # the same function, not only the same shapes
  xv, wv = torch.randn(*x.shape), torch.randn(*w.shape)
  ours = np.asarray(fn(jnp.asarray(xv.numpy()), jnp.asarray(wv.numpy())))
  np.testing.assert_allclose(ours, c.torch_fn(xv, wv).numpy(), rtol=1e-5, atol=1e-5)
  fwd = matmul_muls(jaxgreen.count(fn)(x, w))
  # both: every input element times the whole kernel
  assert fwd == c.every_product
  assert torch_flops(lambda: c.torch_fn(meta(*x.shape), meta(*w.shape))) == 2 * fwd

  g = S((c.b, c.cout, *c.out), F32)
  bwd = matmul_muls(jaxgreen.count(lambda x, w, g: jax.vjp(fn, x, w)[1](g))(x, w, g))
  # ∂x is a plain strided convolution of ∂y, one window per input element, every tap of
  # it: the forward's count again. ∂W is the convolution of x (spread) with ∂y that jax
  # writes, whose kernel (∂y) is longer than its output: not a transposed convolution, so
  # its window taps count (the forward's products that land in the output, and its taps
  # on edge padding), where torch counts every product (x groups).
  weight_grad = c.b * c.cout * (c.cin // c.groups) * c.window_taps()
  assert bwd == fwd + weight_grad
  tx, tw = meta(*x.shape), meta(*w.shape)
  y = c.torch_fn(tx, tw)
  peer = torch_flops(lambda: y.backward(torch.empty_like(y)))
  assert peer == 2 * fwd + 2 * c.groups * fwd  # ∂x, ∂W (x groups)


def test_conv_transpose_by_hand():
  # k=2, stride 2, 7 inputs: jax runs a convolution over x spread to 13 wide, padded by 1 on
  # each side (15), 14 outputs x 2 taps = 28 taps; 14 land on x, 12 on holes, and 2 on the
  # edge padding (the first tap of output 0, the last of output 13). Counted transposed:
  # 7 inputs x 2 taps = 14 products per channel pair, as torch counts them.
  assert _dim_taps(14, 2, n_in=7, lo=1, lhs_dilation=2) == (28, 26, 14)
  c = CONV_TRANSPOSES["k2s2_1d"]
  fn, x, w = c.jax_fn()
  assert matmul_muls(jaxgreen.count(fn)(x, w)) == 2 * 6 * 8 * 14  # b·cout·cin·(7 x 2)
  assert torch_flops(lambda: c.torch_fn(meta(*x.shape), meta(*w.shape))) == 2 * 2 * 6 * 8 * 14


# -- ResNet-18, written twice --------------------------------------------------------


class Block(nn.Module):
  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, use_bias=False)
    norm = functools.partial(nn.BatchNorm, use_running_average=False)
    y = conv(self.features, (3, 3), self.stride, padding=((1, 1), (1, 1)))(x)
    y = nn.relu(norm()(y))
    y = norm()(conv(self.features, (3, 3), padding=((1, 1), (1, 1)))(y))
    if self.stride != 1 or x.shape[-1] != self.features:
      x = norm()(conv(self.features, (1, 1), self.stride, padding="VALID")(x))
    return nn.relu(x + y)


class ResNet18(nn.Module):
  classes: int = 1000

  @nn.compact
  def __call__(self, x):  # NHWC
    x = nn.Conv(64, (7, 7), 2, padding=((3, 3), (3, 3)), use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=False)(x))
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for i, features in enumerate((64, 128, 256, 512)):
      x = Block(features, 1 if i == 0 else 2)(x)
      x = Block(features)(x)
    return nn.Dense(self.classes)(x.mean(axis=(1, 2)))


def torch_resnet18():
  tnn = torch.nn

  class TorchBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn1 = tnn.BatchNorm2d(cout)
      self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.bn2 = tnn.BatchNorm2d(cout)
      self.down = None
      if stride != 1 or cin != cout:
        self.down = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                   tnn.BatchNorm2d(cout))

    def forward(self, x):
      y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
      return F.relu((x if self.down is None else self.down(x)) + y)

  layers = [tnn.Conv2d(3, 64, 7, 2, 3, bias=False), tnn.BatchNorm2d(64), tnn.ReLU(),
            tnn.MaxPool2d(3, 2, 1)]
  cin = 64
  for i, cout in enumerate((64, 128, 256, 512)):
    layers += [TorchBlock(cin, cout, 1 if i == 0 else 2), TorchBlock(cout, cout, 1)]
    cin = cout
  layers += [tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(512, 1000)]
  return tnn.Sequential(*layers)


RESNET18_MACS = 1_814_073_344  # per 224x224 image: convs 1,813,561,344 + fc 512·1000


def resnet18_convs() -> list[Conv]:
  convs = [Conv(1, 3, (224, 224), 64, (7, 7), (2, 2), (3, 3))]
  n, cin = 56, 64  # after the stride-2 max pool
  for i, cout in enumerate((64, 128, 256, 512)):
    for block in range(2):
      s = 2 if i > 0 and block == 0 else 1
      convs.append(Conv(1, cin, (n, n), cout, (3, 3), (s, s), (1, 1)))
      m = convs[-1].m
      convs.append(Conv(1, cout, m, cout, (3, 3), pad=(1, 1)))
      if s != 1 or cin != cout:
        convs.append(Conv(1, cin, (n, n), cout, (1, 1), (s, s)))  # downsampling shortcut
      n, cin = m[0], cout
  return convs


def test_resnet18():
  model, x = ResNet18(), S((1, 224, 224, 3), F32)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)

  def forward(params, batch_stats, x):  # train mode: batch statistics
    return model.apply({"params": params, "batch_stats": batch_stats}, x,
                       mutable=["batch_stats"])[0]

  def train(params, batch_stats, x):  # fwd + bwd of sum(logits²), as torch's below
    return jax.grad(lambda p: (forward(p, batch_stats, x) ** 2).sum())(params)

  args = (variables["params"], variables["batch_stats"], x)
  fwd = matmul_muls(jaxgreen.count(forward)(*args))
  both = matmul_muls(jaxgreen.count(train)(*args))
  convs, fc = resnet18_convs(), 512 * 1000
  assert sum(c.macs for c in convs) + fc == RESNET18_MACS
  assert fwd == RESNET18_MACS  # torchvision publishes 1.81 G
  # forward, ∂W (the forward's products again), ∂x of fc and of every conv but the first
  # (the image needs no gradient): each conv's ∂x counts its forward's taps
  input_grads = sum(c.macs for c in convs[1:])
  assert input_grads == 1_695_547_392
  assert both == 2 * RESNET18_MACS + fc + input_grads  # 5,324,206,080

  with torch.device("meta"):
    net, image = torch_resnet18().train(), torch.empty(1, 3, 224, 224)
  assert sum(p.numel() for p in net.parameters()) == sum(
    math.prod(p.shape) for p in jax.tree.leaves(variables["params"]))  # 11,689,512
  peer_fwd = torch_flops(lambda: net(image))
  out = net(image)
  peer_bwd = torch_flops(lambda: (out**2).sum().backward())
  assert peer_fwd == 2 * fwd
  # torch's backward: ∂W of every layer (the forward's products again) and ∂x of every
  # layer but the first conv, whose input needs no gradient (jax drops it too)
  conv1 = 112 * 112 * 64 * 3 * 7 * 7
  assert peer_bwd == 2 * (RESNET18_MACS + RESNET18_MACS - conv1)
  # both count ∂x as the forward's taps: equal (the edge-padding taps of the convolutions
  # that ∂x runs, counted before, made jaxgreen +0.64 %)
  assert 2 * both == peer_fwd + peer_bwd


# -- attention -----------------------------------------------------------------------


ATT = dict(b=2, s=16, d=32, h=4)  # head size 8


def _jax_attention(causal: bool):
  b, s, d, h = ATT["b"], ATT["s"], ATT["d"], ATT["h"]

  def attention(params, x):
    def heads(w, bias):
      return (x @ w + bias).reshape(b, s, h, d // h)

    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = params
    o = jax.nn.dot_product_attention(heads(wq, bq), heads(wk, bk), heads(wv, bv),
                                     is_causal=causal, implementation="xla")
    return o.reshape(b, s, d) @ wo + bo

  params = [(S((d, d), F32), S((d,), F32))] * 4
  return attention, params, S((b, s, d), F32)


def _torch_attention(causal: bool):
  b, s, d, h = ATT["b"], ATT["s"], ATT["d"], ATT["h"]
  with torch.device("meta"):
    q, k, v, o = (torch.nn.Linear(d, d) for _ in range(4))
  x = meta(b, s, d)

  def attention():
    def heads(lin):
      return lin(x).reshape(b, s, h, d // h).transpose(1, 2)

    with sdpa_kernel(SDPBackend.MATH):
      y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=causal)
    return o(y.transpose(1, 2).reshape(b, s, d))

  return attention


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention(causal):
  b, s, d, h = ATT["b"], ATT["s"], ATT["d"], ATT["h"]
  fn, params, x = _jax_attention(causal)
  fwd = matmul_muls(jaxgreen.count(fn)(params, x))
  # 4 projections b·s·d·d, scores and context b·h·s·s·(d/h) each; a causal mask hides
  # scores but the matmuls still compute them all
  assert fwd == 4 * b * s * d * d + 2 * b * h * s * s * (d // h)

  def train(params, x):  # ∂params and ∂x, as in a layer of a deeper network
    return jax.grad(lambda p, x: (fn(p, x) ** 2).sum(), argnums=(0, 1))(params, x)

  both = matmul_muls(jaxgreen.count(train)(params, x))
  assert both == 3 * fwd  # every matmul has two operands that need a gradient

  attention = _torch_attention(causal)
  assert torch_flops(attention) == 2 * fwd
  y = attention()
  assert torch_flops(attention) + torch_flops(lambda: (y**2).sum().backward()) == 2 * both


def test_fused_attention_formulas():
  # What FlopCounterMode charges a fused (flash / memory-efficient) attention kernel:
  # forward 2 bmm, backward 5 bmm: the kernel recomputes the scores, as jax's vjp does when
  # it runs on its own (scores, then ∂P, ∂V, ∂Q, ∂K; the context is dead code).
  b, s, d, h = ATT["b"], ATT["s"], ATT["d"], ATT["h"]
  q = S((b, s, h, d // h), F32)

  def sdpa(q, k, v):
    return jax.nn.dot_product_attention(q, k, v, implementation="xla")

  fwd = matmul_muls(jaxgreen.count(sdpa)(q, q, q))
  bwd = matmul_muls(jaxgreen.count(lambda q, k, v, g: jax.vjp(sdpa, q, k, v)[1](g))(q, q, q, q))
  shape = (b, h, s, d // h)
  assert flop_counter.sdpa_flop_count(shape, shape, shape) == 2 * fwd
  assert flop_counter.sdpa_backward_flop_count(shape, shape, shape, shape) == 2 * bwd
  assert bwd == 5 * b * h * s * s * (d // h)
