"""Shared pieces of the zoo: a classification train step built from abstract shapes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


def classifier_train_step(model: nn.Module, input_shape: Sequence[int], batch_size: int, *,
                          learning_rate: float = 1e-3, weight_decay: float = 1e-4,
                          mutable: Sequence[str] = (), input_dtype=jnp.float32,
                          call_kwargs: dict[str, Any] | None = None
                          ) -> tuple[Callable, tuple[Any, ...]]:
  """An optax AdamW step on softmax cross-entropy, with abstract example arguments.

  ``train_step(variables, opt_state, inputs, labels) -> (variables, opt_state, loss)``.
  ``variables`` holds ``"params"`` and any ``mutable`` collections (BatchNorm's
  ``"batch_stats"``, updated by the step). Inputs are ``input_dtype[batch, *input_shape]``,
  labels int32[batch]. Everything returned in ``example_args`` is a ShapeDtypeStruct.
  """
  if batch_size < 1:
    raise ValueError(f"make_train_step(batch_size={batch_size}) must be >= 1")
  call_kwargs = call_kwargs or {}
  tx = optax.adamw(learning_rate, weight_decay=weight_decay)
  inputs = jax.ShapeDtypeStruct((batch_size, *input_shape), input_dtype)
  labels = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
  variables = jax.eval_shape(lambda k, x: model.init(k, x, **call_kwargs),
                             jax.random.key(0), inputs)
  opt_state = jax.eval_shape(tx.init, variables["params"])
  mutable = list(mutable)

  def train_step(variables, opt_state, inputs, labels):
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}

    def loss_fn(params):
      out = model.apply({"params": params, **rest}, inputs, mutable=mutable or False,
                        **call_kwargs)
      logits, updates = out if mutable else (out, {})
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss, updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    step, opt_state = tx.update(grads, opt_state, params)
    new = {**rest, **updates, "params": optax.apply_updates(params, step)}
    return new, opt_state, loss

  return train_step, (variables, opt_state, inputs, labels)
