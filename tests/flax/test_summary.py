"""jaxgreen.flax.summary: per-module counts of linen and nnx models, and the model zoo."""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import jaxgreen
import jaxgreen.flax as jf
from benchmarks.zoo import bert, gpt2, mnist, resnet, vit
from jaxgreen._src.cost_model import DEFAULT

S = jax.ShapeDtypeStruct
F32 = jnp.float32
RSQRT_ADD, RSQRT_MUL = DEFAULT.price("rsqrt")  # priced per evaluation by the CostModel


def _row(s, path):
  (row,) = [r for r in s.rows if r["path"] == path]
  return row


# -- exact formulas per layer ------------------------------------------------------


def test_dense():
  s = jf.summary(nn.Dense(3), S((2, 4), F32))
  assert s.totals["muls"] == 2 * 4 * 3  # batch·in·out
  assert s.totals["adds"] == 2 * 3 * 3 + 2 * 3  # batch·(in-1)·out + bias batch·out
  assert s.totals["params"] == 4 * 3 + 3  # kernel + bias
  assert s.rows[0]["path"] == "Dense" and s.rows[0]["module"] == "Dense"


def test_conv_counts_every_tap():
  s = jf.summary(nn.Conv(8, (3, 3)), S((1, 6, 6, 2), F32))  # SAME padding: 6x6 output
  out = 1 * 6 * 6 * 8  # output elements
  assert s.totals["muls"] == out * 2 * 3 * 3  # out·C_in·kh·kw
  assert s.totals["adds"] == out * (2 * 3 * 3 - 1) + out  # out·(C_in·kh·kw - 1) + bias
  assert s.totals["params"] == 3 * 3 * 2 * 8 + 8


def test_embed_lookup_is_free_and_attend_is_a_matmul():
  class Tied(nn.Module):
    @nn.compact
    def __call__(self, tokens):
      emb = nn.Embed(10, 4, name="emb")
      return emb.attend(emb(tokens))

  s = jf.summary(Tied(), S((3,), jnp.int32))
  assert s.forward.by_primitive["gather"].fpo == 0  # a lookup moves data, no arithmetic
  assert s.totals["muls"] == 3 * 10 * 4  # tokens·vocab·d
  assert s.totals["adds"] == 3 * 10 * 3  # tokens·vocab·(d-1)
  # Work of the tied output projection is filed under the embedding ("emb.attend").
  assert _row(s, "Tied/emb")["fpo"] == s.totals["fpo"]
  assert s.totals["params"] == 10 * 4


def test_layernorm():
  r, n = 2, 5  # rows, features
  s = jf.summary(nn.LayerNorm(), S((r, n), F32))
  # mean and E[x²] (2 reductions), var = E[x²]-mean², max(var, 0), x-mean, var+eps, +bias,
  # rsqrt per row.
  assert s.totals["adds"] == 2 * r * (n - 1) + r + r + r * n + r + r * n + r * RSQRT_ADD
  # x², mean², two /n, rsqrt·scale, (x-mean)·that, rsqrt per row.
  assert s.totals["muls"] == r * n + r + 2 * r + r * n + r * n + r * RSQRT_MUL
  assert s.totals["params"] == 2 * n  # scale + bias


def test_batchnorm_inference():
  r, n = 2, 5
  s = jf.summary(nn.BatchNorm(use_running_average=True), S((r, n), F32))
  # x-mean, var+eps, +bias; rsqrt per feature.
  assert s.totals["adds"] == r * n + n + r * n + n * RSQRT_ADD
  # rsqrt·scale per feature, x·that; rsqrt per feature.
  assert s.totals["muls"] == n + r * n + n * RSQRT_MUL
  assert s.totals["params"] == 2 * n  # running statistics are not parameters


def test_attention():
  b, t, d, h = 1, 3, 8, 2
  hd = d // h
  s = jf.summary(nn.MultiHeadDotProductAttention(num_heads=h, qkv_features=d),
                 S((b, t, d), F32))
  for proj in ("query", "key", "value", "out"):
    row = _row(s, f"MultiHeadDotProductAttention/{proj}")
    assert row["muls"] == b * t * d * d  # tokens·d_in·d_out
    assert row["adds"] == b * t * (d - 1) * d + b * t * d  # + bias
    assert row["params"] == d * d + d
  # Four projections, then QK^T and PV: batch·heads·T·T·head_dim each.
  assert s.forward.by_primitive["dot_general"].muls == 4 * b * t * d * d + 2 * b * h * t * t * hd
  assert s.forward.transcendentals >= b * h * t * t  # one exp per score


# -- whole models -------------------------------------------------------------------


class _MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(8, name="a")(x))
    return nn.Dense(2, name="b")(x)


def test_totals_equal_count_of_the_same_apply():
  m, x = _MLP(), S((3, 4), F32)
  v = jax.eval_shape(m.init, jax.random.key(0), x)
  s = jf.summary(m, x, variables=v)
  direct = jaxgreen.count(lambda v, x: m.apply(v, x))(v, x)
  assert s.forward == direct
  assert (s.totals["adds"], s.totals["muls"]) == (direct.adds, direct.muls)
  assert s.rows[0]["fpo"] == direct.fpo  # the model's row includes everything
  assert _row(s, "_MLP/a")["muls"] == 3 * 4 * 8  # batch·in·out
  assert _row(s, "_MLP/b")["muls"] == 3 * 8 * 2


def test_backward_equals_count_of_the_grad_program():
  m, x = _MLP(), S((3, 4), F32)
  params = jax.eval_shape(m.init, jax.random.key(0), x)["params"]
  s = jf.summary(m, x, backward=True, xla=False)

  def sum_of_squares(p, x):  # summary's default loss
    y = m.apply({"params": p}, x)
    return jnp.sum(y * y)

  grad = jaxgreen.count(jax.grad(sum_of_squares))(params, x)
  assert s.train == grad
  assert s.totals["train_fpo"] == grad.fpo
  # Dense b: forward h·W (3 rows, 8 -> 2), dW = h^T·g (8·2 outputs over 3 rows) and
  # dh = g·W^T (3·8 outputs over 2).
  assert _row(s, "_MLP/b")["train_muls"] == 3 * 8 * 2 + 8 * 2 * 3 + 3 * 8 * 2
  # Dense a: forward and dW only; the input needs no gradient.
  assert _row(s, "_MLP/a")["train_muls"] == 3 * 4 * 8 + 4 * 8 * 3
  assert s.train.fpo > 2 * s.forward.fpo  # backward is counted, not estimated


def test_parameter_counts_match_torchvision():
  model, x = resnet.model_and_input(resnet.resnet18())
  s = jf.summary(model, x, max_depth=1, xla=False)
  assert s.totals["params"] == 11_689_512  # torchvision resnet18 num_params
  assert max(r["depth"] for r in s.rows) == 1
  assert sum(r["params"] for r in s.rows if r["depth"] == 1) == s.totals["params"]
  convdense = (s.forward.by_primitive["conv_general_dilated"].muls
               + s.forward.by_primitive["dot_general"].muls)
  assert abs(convdense / 1.81e9 - 1) < 0.01  # torchvision: 1.81 GMACs


def test_gpt2_parameter_count_formula():
  cfg = gpt2.tiny()
  d, L, V, T = cfg.d_model, cfg.n_layer, cfg.vocab, cfg.seq_len
  model, tokens = gpt2.model_and_input(cfg)
  s = jf.summary(model, tokens, xla=False)
  per_layer = 12 * d * d + 13 * d  # qkv, proj, mlp kernels + their biases + 2 LayerNorms
  assert s.totals["params"] == V * d + T * d + L * per_layer + 2 * d  # + final LayerNorm


# -- lifted transforms ---------------------------------------------------------------


class _Block(nn.Module):
  @nn.compact
  def __call__(self, x, _=None):
    return jnp.tanh(nn.Dense(4, name="d")(x)), None  # tanh' needs the forward output


class _Lifted(nn.Module):
  @nn.compact
  def __call__(self, x):
    kw = {"variable_axes": {"params": 0}, "split_rngs": {"params": True}}
    x, _ = nn.scan(_Block, length=3, **kw)(name="s")(x, None)
    x, _ = nn.remat(_Block)(name="r")(x)
    x, _ = nn.vmap(_Block, in_axes=0, **kw)(name="v")(x)
    x, _ = nn.scan(nn.remat(_Block), length=2, **kw)(name="sr")(x, None)
    return x


def test_linen_paths_survive_scan_remat_vmap_with_trip_counts():
  s = jf.summary(_Lifted(), S((2, 4), F32), backward=True, xla=False)
  one = 2 * 4 * 4  # rows·in·out of one Dense
  assert _row(s, "_Lifted/s/d")["muls"] == 3 * one  # scan length 3
  assert _row(s, "_Lifted/r/d")["muls"] == one
  assert _row(s, "_Lifted/v/d")["muls"] == 2 * 4 * 4  # vmapped over the 2 rows
  assert _row(s, "_Lifted/sr/d")["muls"] == 2 * one
  assert _row(s, "_Lifted/s/d")["params"] == 3 * (4 * 4 + 4)  # stacked on the layer axis
  assert s.rows[0]["own_fpo"] == 0  # all work is inside the modules
  # Backward: forward + dx + dW for the scanned Dense (dx of the first layer included).
  assert _row(s, "_Lifted/s/d")["train_muls"] == 3 * 3 * one
  # remat recomputes the forward in the backward pass: one more forward than without.
  assert _row(s, "_Lifted/sr/d")["train_muls"] == 2 * (3 * one + one)
  assert _row(s, "_Lifted/r/d")["train_muls"] == 3 * one + one
  # Every backward count is filed under a module, none lost to a transform name.
  # The rest is the default loss's backward: d(y·y) = y·g + g·y per output element.
  assert s.rows[0]["train_own_fpo"] == 3 * (2 * 4)
  assert sum(r["train_fpo"] for r in s.rows if r["depth"] == 1) + s.rows[0]["train_own_fpo"] \
      == s.totals["train_fpo"]


def test_remat_scan_gpt2_matches_unrolled_forward():
  unrolled = jf.summary(*gpt2.model_and_input(gpt2.tiny()), xla=False)
  scanned = jf.summary(*gpt2.model_and_input(gpt2.tiny(scan_layers=True, remat=True)),
                       xla=False)
  assert scanned.totals["fpo"] == unrolled.totals["fpo"]
  assert scanned.totals["params"] == unrolled.totals["params"]
  blocks = sum(r["fpo"] for r in unrolled.rows if r["module"] == "Block")
  assert _row(scanned, "GPT2/h/block")["fpo"] == blocks  # n_layer blocks, one path


# -- nnx ----------------------------------------------------------------------------------


class _NnxBlock(nnx.Module):
  def __init__(self, rngs):
    self.d = nnx.Linear(4, 4, rngs=rngs)

  def __call__(self, x, _=None):
    return self.d(x), None


class _NnxMLP(nnx.Module):
  def __init__(self, rngs):
    self.a = nnx.Linear(4, 8, rngs=rngs)
    self.b = nnx.Linear(8, 2, rngs=rngs)

  def __call__(self, x):
    return self.b(nnx.relu(self.a(x)))


def test_linen_and_nnx_give_identical_counts():
  x = S((3, 4), F32)
  lin = jf.summary(_MLP(), x, backward=True, xla=False)
  nn_model = nnx.eval_shape(lambda: _NnxMLP(nnx.Rngs(0)))
  nx = jf.summary(nn_model, x, backward=True, xla=False)
  keys = ("depth", "params", "adds", "muls", "fpo", "own_fpo", "train_adds", "train_muls")
  assert [[r[k] for k in keys] for r in lin.rows] == [[r[k] for k in keys] for r in nx.rows]
  assert [r["path"].split("/", 1)[-1] for r in lin.rows[1:]] == ["a", "b"]
  assert [r["path"] for r in nx.rows] == ["_NnxMLP", "_NnxMLP/a", "_NnxMLP/b"]
  assert lin.forward.by_primitive == nx.forward.by_primitive
  assert lin.train.by_primitive == nx.train.by_primitive


def test_nnx_model_is_not_modified():
  model = _NnxMLP(nnx.Rngs(0))
  jf.summary(model, S((3, 4), F32), xla=False)
  assert type(model.a) is nnx.Linear  # scopes were put on a throwaway copy


def test_nnx_paths_survive_scan_vmap_remat_and_containers():
  class Stack(nnx.Module):
    def __init__(self, rngs):
      @nnx.split_rngs(splits=3)
      @nnx.vmap(in_axes=(0,), out_axes=0)
      def make(rngs):
        return _NnxBlock(rngs)

      self.s = make(rngs)
      self.r = nnx.Linear(4, 4, rngs=rngs)
      self.layers = nnx.List([nnx.Linear(4, 4, rngs=rngs) for _ in range(2)])

    def __call__(self, x):
      @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
      def body(x, blk):
        return blk(x)[0]

      x = body(x, self.s)
      x = nnx.remat(lambda m, x: m(x))(self.r, x)
      for layer in self.layers:
        x = layer(x)
      return x

  s = jf.summary(nnx.eval_shape(lambda: Stack(nnx.Rngs(0))), S((2, 4), F32), xla=False,
                 backward=True)
  one = 2 * 4 * 4
  assert _row(s, "Stack/s/d")["muls"] == 3 * one  # scan length 3
  assert _row(s, "Stack/r")["muls"] == one
  assert _row(s, "Stack/layers/0")["muls"] == one  # a list's items keep their index
  assert _row(s, "Stack/layers")["muls"] == 2 * one
  assert [r["path"] for r in s.rows][1:3] == ["Stack/s", "Stack/s/d"]  # execution order
  assert sum(r["train_fpo"] for r in s.rows if r["depth"] == 1) + s.rows[0]["train_own_fpo"] \
      == s.totals["train_fpo"]
  assert s.rows[0]["train_own_fpo"] == 3 * (2 * 4)  # only the loss, as in linen


def test_linen_cond_and_switch_keep_module_paths():
  class Inner(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(4, name="d")(x)

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.cond(True, lambda m, x: m(x), lambda m, x: m(x), Inner(name="c"), x)
      return nn.switch(1, [lambda m, x: m(x)] * 2, Inner(name="w"), x)

  s = jf.summary(Net(), S((2, 4), F32), xla=False)
  for path in ("Net/c/d", "Net/w/d"):  # the branch re-enters the module by its name
    assert _row(s, path)["muls"] == 2 * 4 * 4  # batch·in·out
    assert _row(s, path)["own_fpo"] == _row(s, path)["fpo"]


def test_nnx_plain_list_and_dict_containers():
  class Net(nnx.Module):
    def __init__(self, rngs):
      self.layers = nnx.data([nnx.Linear(4, 4, rngs=rngs) for _ in range(2)])  # not modules
      self.heads = nnx.data({"a": nnx.Linear(4, 3, rngs=rngs)})

    def __call__(self, x):
      for layer in self.layers:
        x = layer(x)
      return self.heads["a"](x)

  s = jf.summary(nnx.eval_shape(lambda: Net(nnx.Rngs(0))), S((2, 4), F32), xla=False)
  assert _row(s, "Net/layers/1")["muls"] == 2 * 4 * 4  # batch·in·out
  assert _row(s, "Net/heads/a")["muls"] == 2 * 4 * 3
  assert _row(s, "Net/heads/a")["params"] == 4 * 3 + 3
  assert s.rows[0]["own_fpo"] == 0  # all work is filed under the layers


# -- output and errors ------------------------------------------------------------------


def test_outputs_table_markdown_json():
  s = jf.summary(_MLP(), S((3, 4), F32), backward=True)
  text = str(s)
  assert "_MLP" in text and "train FPO" in text and "XLA flops" in text
  md = s.to_markdown()
  assert md.count("\n| ") >= 4 and "| module path |" in md
  d = json.loads(s.to_json())
  assert d["totals"]["fpo"] == s.totals["fpo"] and len(d["rows"]) == 3
  assert jaxgreen.Cost.from_dict(d["train"]) == s.train
  assert isinstance(s.totals["xla_flops"], float) or s.totals["xla_flops"] == "unavailable"


def test_notebook_view_is_a_module_tree_with_exact_counts():
  s = jf.summary(_MLP(), S((3, 4), F32), backward=True)
  assert repr(s).startswith("ModuleSummary(model='_MLP', modules=3,") and "\n" not in repr(s)
  out = s._repr_html_()
  assert out.count("<details") == 1  # the model folds over its two Dense layers
  for r in s.rows:
    assert f">{r['path'].rsplit('/', 1)[-1]}<" in out and f"{r['fpo']:,}" in out
  assert f"{s.totals['train_fpo']:,}" in out and "<script" not in out
  pytest.importorskip("pandas", reason="to_pandas needs the [pandas] extra")
  df = s.to_pandas()
  assert list(df["path"]) == [r["path"] for r in s.rows]
  assert df["own_fpo"].sum() == s.totals["fpo"]  # own work adds up to the total


def test_xla_flops_is_best_effort(monkeypatch):
  def broken(x):
    raise RuntimeError("cannot lower")

  assert jf.xla_flops(broken, jnp.ones(3)) == "unavailable"

  class FakeLowered:
    def __init__(self, result):
      self.result = result

    def cost_analysis(self):
      return self.result

  for result in (None, [], [{"flops": 1.0}, {"flops": 2.0}], {"bytes": 3.0}, {"flops": -1.0}):
    monkeypatch.setattr(jax, "jit", lambda fn, r=result: type(
        "J", (), {"lower": lambda self, *a: FakeLowered(r)})())
    assert jf.xla_flops(lambda x: x, 1.0) == "unavailable"
  monkeypatch.setattr(jax, "jit", lambda fn: type(
      "J", (), {"lower": lambda self, *a: FakeLowered([{"flops": 5.0}])})())
  assert jf.xla_flops(lambda x: x, 1.0) == 5.0


def test_bad_arguments_name_the_argument():
  x = S((3, 4), F32)
  with pytest.raises(TypeError, match="model"):
    jf.summary(lambda x: x, x)
  with pytest.raises(TypeError, match="variables"):
    jf.summary(nnx.eval_shape(lambda: _NnxMLP(nnx.Rngs(0))), x, variables={})
  with pytest.raises(ValueError, match="max_depth"):
    jf.summary(_MLP(), x, max_depth=-1)
  with pytest.raises(TypeError, match="variables"):
    jf.summary(_MLP(), x, variables=[1, 2])


def test_batchnorm_training_mode_with_mutable():
  model, x = mnist.model_and_input("cnn")
  s = jf.summary(model, x, xla=False)
  assert s.totals["params"] == (3 * 3 * 1 * 32 + 32) + (3 * 3 * 32 * 64 + 64) + (
      7 * 7 * 64 * 256 + 256) + (256 * 10 + 10)
  bn = resnet.ResNet(resnet.resnet18(image_size=32, num_classes=10))
  train = jf.summary(bn, S((2, 32, 32, 3), F32), mutable=["batch_stats"], train=True,
                     xla=False, max_depth=1)
  infer = jf.summary(bn, S((2, 32, 32, 3), F32), xla=False, max_depth=1)
  assert train.totals["fpo"] > infer.totals["fpo"]  # batch statistics are computed


# -- zoo ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: gpt2.make_train_step(gpt2.tiny(), 2),
    lambda: gpt2.make_train_step(gpt2.tiny(scan_layers=True, remat=True), 2),
    lambda: mnist.make_train_step("mlp", 4),
    lambda: resnet.make_train_step(resnet.resnet18(image_size=32, num_classes=10), 2),
    lambda: vit.make_train_step(vit.tiny(), 2),
    lambda: bert.make_train_step(bert.tiny(), 2),
])
def test_zoo_train_steps_count_exactly(make):
  step, args = make()
  assert all(isinstance(a, S) for a in jax.tree.leaves(args))
  cost = jaxgreen.count(step)(*args)
  assert cost.exact and cost.fpo > 0
  assert jax.eval_shape(step, *args)[-1].shape == ()  # the loss
