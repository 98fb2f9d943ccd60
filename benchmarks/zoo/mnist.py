"""The bundled MNIST models (:mod:`jaxgreen._src.examples.mnist`: a LeNet-like CNN and a
784-512-512-10 MLP) in the zoo's form: ``make_train_step(name, batch_size)``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgreen._src.examples.mnist import CNN as CNN
from jaxgreen._src.examples.mnist import MLP as MLP

from ._common import classifier_train_step


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
