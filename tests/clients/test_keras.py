"""Keras 3 on the JAX backend: FPOCallback records fit and evaluate from Keras' own
jitted train and test steps.

The expected E is jaxgreen's count of the function Keras' JAX trainer jit-compiles
(``model.train_step`` under ``jax.jit``), traced on the state and batch Keras passes
it; its matmul part is checked against the closed form (M·N·K MULs per dot).
"""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras", reason="the Keras tests need the keras extra")
if keras.backend.backend() != "jax":
  pytest.skip("Keras was imported with another backend before this test",
              allow_module_level=True)

import jax  # noqa: E402

import jaxgreen  # noqa: E402
from jaxgreen.keras import FPOCallback  # noqa: E402

N, BATCH, D_IN, W, D_OUT = 64, 16, 6, 8, 3  # examples, batch, in, hidden, out
STEPS = N // BATCH  # 4 per epoch


def _model():
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((D_IN,)), keras.layers.Dense(W, activation="relu"),
                            keras.layers.Dense(D_OUT)])
  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
  return model


def _data(n=N):
  rng = np.random.default_rng(0)
  return rng.normal(size=(n, D_IN)).astype("float32"), rng.normal(size=(n, D_OUT)).astype("float32")


def _step_cost(model, function):
  """jaxgreen's count of the jitted step inside Keras' train/test function."""
  code = function.__code__
  step = function.__closure__[code.co_freevars.index("step_function")].cell_contents
  if hasattr(step, "__wrapped__"):
    step = step.__wrapped__
  x, y = _data(BATCH)
  state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                               optimizer_variables=function is model.train_function,
                               metrics_variables=True)
  return jaxgreen.count(step)(state, (x, y, None))


def test_fit_records_steps_times_the_count_and_eval_apart(tmp_path):
  model = _model()
  x, y = _data()
  exp = jaxgreen.Experiment("keras", ledger=str(tmp_path / "green.sqlite"))
  cb = FPOCallback(exp, hparams={"lr": 0.1})
  model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[cb])
  model.evaluate(x[:32], y[:32], batch_size=BATCH, verbose=0, callbacks=[cb])

  train = _step_cost(model, model.train_function)
  assert train.exact and not train.uncounted
  # Forward dots; backward the dW of both layers (as many MULs as the forward) and dx
  # of the second layer only (the input is data, not differentiated).
  fwd = BATCH * (D_IN * W + W * D_OUT)
  assert train.by_primitive["dot_general"].muls == 2 * fwd + BATCH * W * D_OUT  # 2688
  test = _step_cost(model, model.test_function)
  assert test.by_primitive["dot_general"].muls == fwd  # inference: the forward alone

  (trial,) = exp.price_tag().trials
  assert trial.hparams == {"lr": 0.1}
  assert trial.status == "completed"
  assert trial.train_steps == 2 * STEPS  # epochs × batches
  assert trial.train_examples == 2 * N
  assert trial.train_fpo == 2 * STEPS * train.fpo  # steps × the count, exact
  assert trial.eval_steps == 32 // BATCH
  assert trial.eval_examples == 32
  assert trial.eval_fpo == 2 * test.fpo
  assert trial.exact
  assert cb.train.totals()["fpo"] == trial.train_fpo
  exp.close()


def test_each_fit_is_a_trial_and_validation_is_its_eval(tmp_path):
  model = _model()
  x, y = _data()
  exp = jaxgreen.Experiment("keras", ledger=str(tmp_path / "green.sqlite"))
  cb = FPOCallback(exp)
  model.fit(x, y, batch_size=BATCH, epochs=1, validation_data=(x[:16], y[:16]), verbose=0,
            callbacks=[cb])
  model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[cb])
  model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # no callback: not recorded
  tag = exp.price_tag()
  assert tag.h == 2
  first, second = tag.trials
  assert (first.train_steps, second.train_steps) == (STEPS, STEPS)
  assert (first.eval_steps, second.eval_steps) == (1, 0)  # one validation batch
  assert first.train_fpo == second.train_fpo
  exp.close()


def test_steps_per_execution_counts_batches(tmp_path):
  # Keras runs 2 batches per call of its train function: each batch is one step of E.
  model = _model()
  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", steps_per_execution=2)
  x, y = _data()
  exp = jaxgreen.Experiment("keras", ledger=str(tmp_path / "green.sqlite"))
  cb = FPOCallback(exp)
  model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[cb])
  (trial,) = exp.price_tag().trials
  assert trial.train_steps == STEPS
  assert trial.train_fpo == STEPS * _step_cost(model, model.train_function).fpo
  exp.close()


def test_fit_inside_a_user_trial(tmp_path):
  model = _model()
  x, y = _data()
  exp = jaxgreen.Experiment("keras", ledger=str(tmp_path / "green.sqlite"))
  cb = FPOCallback(exp)
  with exp.trial({"epochs": 2}) as trial:
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[cb])
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[cb])
  assert trial.steps == 2 * STEPS
  assert exp.price_tag().h == 1  # the user's trial holds both fits
  exp.close()


def test_bad_experiment_names_the_fix():
  with pytest.raises(TypeError, match="jaxgreen.Experiment"):
    FPOCallback("green.sqlite")


def test_jax_is_the_backend():
  assert keras.backend.backend() == "jax"
  assert isinstance(_model().trainable_variables[0].value, jax.Array)
