"""MNIST-sized models in Flax linen: a 784-512-512-10 MLP and a small CNN."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ._common import classifier_train_step


class MLP(nn.Module):
  """Flatten, two 512-wide ReLU layers, 10 logits."""

  hidden: tuple[int, ...] = (512, 512)
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    for i, h in enumerate(self.hidden):
      x = nn.relu(nn.Dense(h, name=f"Dense_{i}")(x))
    return nn.Dense(self.num_classes, name="head")(x)


class CNN(nn.Module):
  """Two 3x3 convolutions (32, 64 channels, SAME), 2x2 max pool, Dense 128, 10 logits."""

  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3), name="conv1")(x))
    x = nn.relu(nn.Conv(64, (3, 3), name="conv2")(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Dense(128, name="fc1")(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes, name="fc2")(x)


def model_and_input(name: str = "mlp", batch_size: int = 1):
  """``(model, images float[B, 28, 28, 1])`` for ``name`` in {"mlp", "cnn"}."""
  models = {"mlp": MLP, "cnn": CNN}
  if name not in models:
    raise ValueError(f"model_and_input(name={name!r}): use one of {sorted(models)}")
  return models[name](), jax.ShapeDtypeStruct((batch_size, 28, 28, 1), jnp.float32)


def make_train_step(name: str, batch_size: int, **kw):
  """``(train_step, (variables, opt_state, images, labels))``, all abstract (AdamW)."""
  model, _ = model_and_input(name, batch_size)
  return classifier_train_step(model, (28, 28, 1), batch_size, **kw)
