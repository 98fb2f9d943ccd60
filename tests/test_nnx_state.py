"""State updated in place is work: nnx steps that return only the loss, BatchNorm
statistics, linen steps that return their updated collections."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import nnx

import jaxgreen

S = jax.ShapeDtypeStruct
B, D_IN, D_HID, D_OUT = 32, 64, 128, 10


class MLP(nnx.Module):
  def __init__(self, rngs):
    self.l1 = nnx.Linear(D_IN, D_HID, rngs=rngs)
    self.l2 = nnx.Linear(D_HID, D_OUT, rngs=rngs)

  def __call__(self, x):
    return self.l2(jax.nn.relu(self.l1(x)))


def _loss(model, x, y):
  return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def inplace_step(model, optimizer, x, y):
  """The idiomatic nnx step: parameters and moments updated in place, loss returned."""
  loss, grads = nnx.value_and_grad(_loss)(model, x, y)
  optimizer.update(model, grads)
  return loss


def _setup():
  model = MLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adamw(1e-3), wrt=nnx.Param)
  x, y = jnp.ones((B, D_IN)), jnp.zeros((B,), jnp.int32)
  return model, optimizer, x, y


def _functional_twin(model, optimizer):
  graphdef, state = nnx.split((model, optimizer))

  def step(state, x, y):
    model, optimizer = nnx.merge(graphdef, state)
    loss, grads = nnx.value_and_grad(_loss)(model, x, y)
    optimizer.update(model, grads)
    return loss, nnx.split((model, optimizer))[1]

  return step, state


def test_inplace_nnx_step_counts_like_its_functional_twin():
  model, optimizer, x, y = _setup()
  step, state = _functional_twin(model, optimizer)
  for stage in ("jaxpr", "lowered"):
    inplace = jaxgreen.count(inplace_step, stage=stage)(model, optimizer, x, y)
    twin = jaxgreen.count(step, stage=stage)(state, x, y)
    assert inplace.exact and twin.exact
    assert inplace.fpo == twin.fpo, stage
  # The matmul work of forward + backward is all there: 3 matmuls per layer
  # (forward, input gradient, weight gradient; the first layer's input gradient is dead).
  # forward: B·(D_IN·D_HID + D_HID·D_OUT) MULs, backward: weight grads the same, input
  # grad of layer 2 only: B·D_HID·D_OUT.
  fwd = B * (D_IN * D_HID + D_HID * D_OUT)
  assert inplace.by_primitive["dot_general"].muls == 2 * fwd + B * D_HID * D_OUT
  # and so is AdamW: it touches every parameter, so its work is a multiple of them.
  assert inplace.by_primitive["mul"].muls > (D_IN * D_HID + D_HID * D_OUT) * 3


def test_without_the_state_the_step_would_lose_its_backward_pass():
  model, optimizer, x, y = _setup()
  raw = jaxgreen.count_jaxpr(jax.make_jaxpr(inplace_step)(model, optimizer, x, y))
  whole = jaxgreen.count(inplace_step)(model, optimizer, x, y)
  assert raw.fpo < 0.5 * whole.fpo  # what dead-code elimination would have reported


def test_track_records_the_whole_inplace_step():
  model, optimizer, x, y = _setup()
  step, state = _functional_twin(model, optimizer)
  tracked = jaxgreen.track(inplace_step, examples=lambda a, k: a[2].shape[0])
  before = nnx.state(model, nnx.Param)["l1"]["kernel"][...]
  for _ in range(3):
    tracked(model, optimizer, x, y)
  totals = tracked.tracker.totals()
  assert totals["steps"] == 3 and totals["examples"] == 3 * B
  assert totals["fpo"] == 3 * jaxgreen.count(step)(state, x, y).fpo
  # the step really ran and updated the model in place
  assert not jnp.allclose(nnx.state(model, nnx.Param)["l1"]["kernel"][...], before)


F = 16  # BatchNorm features


class _BNNet(nnx.Module):
  def __init__(self, rngs):
    self.lin = nnx.Linear(8, F, rngs=rngs)
    self.bn = nnx.BatchNorm(F, use_running_average=False, rngs=rngs)

  def __call__(self, x):
    return self.bn(self.lin(x))


# Updating the running statistics: ra <- momentum·ra + (1 - momentum)·batch_stat, for
# the mean and the variance: 2 MUL + 1 ADD per feature each ((1 - momentum) is a Python
# constant).
_EMA_FPO = 2 * (2 + 1) * F


def test_summary_of_nnx_batchnorm_counts_the_running_statistics():
  m = _BNNet(nnx.Rngs(0))
  x = S((4, 8), jnp.float32)
  graphdef, state = nnx.split(m)
  out_only = lambda st, x: nnx.merge(graphdef, st)(x)  # noqa: E731
  without = jaxgreen.count_jaxpr(jax.make_jaxpr(out_only)(state, x))
  s = jaxgreen.flax.summary(m, x)
  assert s.totals["fpo"] == without.fpo + _EMA_FPO


class _LinenBN(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Dense(F)(x)
    return nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)


def test_linen_step_returning_batch_stats_counts_their_update():
  model = _LinenBN()
  x = jnp.ones((4, 8))
  variables = model.init(jax.random.key(0), x, train=False)

  def step(params, batch_stats, x):
    def loss(p):
      y, upd = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                           mutable=["batch_stats"])
      return jnp.sum(y * y), upd["batch_stats"]

    grads, new_stats = jax.grad(loss, has_aux=True)(params)
    return grads, new_stats

  def step_dropping_stats(params, batch_stats, x):
    return step(params, batch_stats, x)[0]

  args = (variables["params"], variables["batch_stats"], x)
  whole = jaxgreen.count(step)(*args)
  dropped = jaxgreen.count(step_dropping_stats)(*args)
  assert whole.exact and whole.fpo - dropped.fpo == _EMA_FPO
  # Linen needs nothing special: the returned statistics are outputs of the program.
  assert whole.fpo == jaxgreen.count_jaxpr(jax.make_jaxpr(step)(*args)).fpo


def test_jax_refs_written_in_place_are_counted():
  new_ref = getattr(jax, "new_ref", None) or jax.experimental.mutable_array

  @jax.jit
  def f(r, x):
    r[...] = r[...] + x @ x  # an effect: never dead code
    return x.sum()

  c = jaxgreen.count(f)(new_ref(jnp.zeros((8, 8))), jnp.ones((8, 8)))
  # x @ x: 8·8·8 MUL + 8·8·7 ADD; r + ...: 64 ADD; x.sum(): 63 ADD
  assert (c.muls, c.adds, c.exact) == (512, 448 + 64 + 63, True)
