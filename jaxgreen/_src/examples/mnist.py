"""An MNIST-sized CNN and MLP with an optax train step, for the demo, the docs and the
benchmark zoo (``benchmarks/zoo/mnist.py`` counts these same models).

Everything here works on abstract inputs: ``abstract_train_args`` returns
``jax.ShapeDtypeStruct`` trees, so counting allocates nothing.

Example::

  model = CNN()
  tx, train_step, predict = make_train_step(model)
  step = jaxgreen.count(train_step)(*abstract_train_args(model, tx, batch=32))
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax  # type: ignore[import-untyped]  # optax ships no type information


class CNN(nn.Module):
  """Two 3x3 conv layers with average pooling, then two dense layers (LeNet-like)."""

  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3), name="conv1")(x))
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(64, (3, 3), name="conv2")(x))
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(256, name="fc1")(x))
    return nn.Dense(self.num_classes, name="fc2")(x)


class MLP(nn.Module):
  """A 784-512-512-10 multilayer perceptron."""

  hidden: int = 512
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(self.hidden, name="fc1")(x))
    x = nn.relu(nn.Dense(self.hidden, name="fc2")(x))
    return nn.Dense(self.num_classes, name="fc3")(x)


def make_train_step(model: nn.Module, tx: optax.GradientTransformation | None = None):
  """Returns ``(tx, train_step, predict)`` for ``model`` with softmax cross-entropy."""
  if tx is None:
    tx = optax.adam(1e-3)

  def loss_fn(params, images, labels):
    logits = model.apply(params, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  @jax.jit
  def train_step(params, opt_state, images, labels):
    loss, grads = jax.value_and_grad(loss_fn)(params, images, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  @jax.jit
  def predict(params, images):
    return jnp.argmax(model.apply(params, images), axis=-1)

  return tx, train_step, predict


def abstract_train_args(model: nn.Module, tx: optax.GradientTransformation,
                        batch: int = 32):
  """ShapeDtypeStructs for ``train_step(params, opt_state, images, labels)``."""
  images = jax.ShapeDtypeStruct((batch, 28, 28, 1), jnp.float32)
  labels = jax.ShapeDtypeStruct((batch,), jnp.int32)
  params = jax.eval_shape(model.init, jax.random.key(0), images)
  opt_state = jax.eval_shape(tx.init, params)
  return params, opt_state, images, labels
