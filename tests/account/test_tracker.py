"""``jaxgreen.track``: counts once per signature, changes nothing, never waits."""

from __future__ import annotations

import functools
import inspect

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgreen
from jaxgreen._src.account import Experiment, current_trial, track

B, IN, OUT = 8, 16, 4  # batch, input features, outputs


def _loss(params, batch):
  x, y = batch
  return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def _make(tx=None):
  tx = tx or optax.sgd(0.1)

  def train_step(params, opt_state, batch):
    grads = jax.grad(_loss)(params, batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  params = {"w": jnp.full((IN, OUT), 0.1, jnp.float32), "b": jnp.zeros(OUT)}
  return train_step, params, tx.init(params)


def _batch(n=B):
  x = jnp.arange(n * IN, dtype=jnp.float32).reshape(n, IN) / (n * IN)
  return x, jnp.ones((n, OUT))


@pytest.fixture
def compiles():
  """Counts XLA backend compilations while the test runs."""
  events = []

  def listener(name, _secs, **_):
    if "backend_compile" in name:
      events.append(name)

  jax.monitoring.register_event_duration_secs_listener(listener)
  yield events
  jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize("jit", [False, True], ids=["plain", "jit"])
def test_outputs_identical_and_fpo_is_steps_times_count(jit):
  step, params, opt = _make(optax.adam(1e-2))
  ref = jax.jit(step) if jit else step
  tracked = track(jax.jit(step) if jit else step, examples=lambda a, k: a[2][0].shape[0])
  p1, o1, p2, o2 = params, opt, params, opt
  for _ in range(3):
    p1, o1 = ref(p1, o1, _batch())
    p2, o2 = tracked(p2, o2, _batch())
  for a, b in zip(jax.tree.leaves((p1, o1)), jax.tree.leaves((p2, o2)), strict=True):
    np.testing.assert_array_equal(a, b)
  per_step = jaxgreen.count(step)(params, opt, _batch()).fpo
  t = tracked.tracker
  assert (t.steps, t.examples) == (3, 3 * B)  # 3 steps of batch B
  assert t.fpo == 3 * per_step
  assert per_step > 2 * B * IN * OUT  # at least forward and backward matmul MULs
  assert len(t.entries) == 1


def test_one_trace_and_no_extra_compile(compiles):
  traces = []
  step, params, opt = _make()

  def fresh():  # a new function each time: jit caches traces per function
    def traced_step(params, opt_state, batch):
      traces.append(1)  # runs once per trace
      return step(params, opt_state, batch)
    return traced_step

  b8, b4 = _batch(), _batch(4)  # built before counting: eager ops compile too
  compiles.clear()
  raw = jax.jit(fresh())
  for _ in range(5):
    raw(params, opt, b8)
  raw_traces, raw_compiles = len(traces), len(compiles)
  assert (raw_traces, raw_compiles) == (1, 1)

  traces.clear()
  compiles.clear()
  tracked = track(jax.jit(fresh()), examples="batch")
  p, o = params, opt
  for _ in range(5):
    p, o = tracked(p, o, b8)
  assert len(traces) == 1  # the count shares jit's trace: 1 trace for 5 calls
  assert len(compiles) == 1  # one executable, as without tracking
  assert tracked.__wrapped__._cache_size() == 1
  p, o = tracked(p, o, b4)  # a new batch size: one new trace and compile
  assert (len(traces), len(compiles), len(tracked.tracker.entries)) == (2, 2, 2)


def test_alternating_shapes_use_the_right_cost():
  step, params, opt = _make()
  tracked = track(jax.jit(step), examples="batch")
  p, o = params, opt
  for i in range(7):  # batches 8, 4, 8, 4, 8, 4, 8
    p, o = tracked(p, o, _batch(B if i % 2 == 0 else 4))
  c8 = jaxgreen.count(step)(params, opt, _batch(B)).fpo
  c4 = jaxgreen.count(step)(params, opt, _batch(4)).fpo
  assert c8 != c4
  assert tracked.tracker.fpo == 4 * c8 + 3 * c4  # four batches of 8, three of 4
  assert tracked.tracker.examples == 4 * B + 3 * 4


def test_donation_kept_and_signature_preserved():
  step, params, opt = _make()
  jitted = jax.jit(step, donate_argnums=(0, 1))
  tracked = track(jitted, examples="batch")
  assert inspect.signature(tracked) == inspect.signature(step)
  assert tracked.__wrapped__ is jitted
  assert tracked.__name__ == "train_step"
  assert tracked.lower(params, opt, _batch()).as_text()  # jit's methods are kept
  p, o = tracked(params, opt, _batch())
  assert params["w"].is_deleted()  # donated, as without tracking
  p, o = tracked(p, o, _batch(4))  # a new signature after donation still counts
  assert len(tracked.tracker.entries) == 2


def test_static_args_of_jit_and_of_plain_functions():
  def apply(x, n):
    for _ in range(n):
      x = x @ x
    return x

  x = jnp.ones((4, 4))
  jitted = track(jax.jit(apply, static_argnums=1), examples=1)
  plain = track(apply, static_argnums=1, examples=1)
  for f in (jitted, plain):
    f(x, 2)
    f(x, 3)
    f(x, n=3) if f is plain else f(x, 3)
    assert f.tracker.fpo == 8 * (4 * 4 * 4 + 4 * 4 * 3)  # 8 matmuls of MUL 4·4·4, ADD 4·4·3
    assert len(f.tracker.entries) == 2 + (f is plain)


def test_python_scalars_are_not_part_of_a_jit_signature():
  f = track(jax.jit(lambda x, lr: x * lr), examples=1)
  for lr in (0.1, 0.2, 0.3):
    f(jnp.ones(3), lr)
  assert len(f.tracker.entries) == 1
  assert f.tracker.fpo == 3 * 3  # 3 calls of 3 MULs
  (entry,) = f.tracker.entries.values()
  assert entry.signature == "float32[3], float"  # the type, not the first value seen


def test_examples_forms_and_errors():
  f = lambda batch, scale: batch * scale
  assert track(f)(jnp.ones((5, 2)), 2.0) is not None
  by_name = track(f)
  by_name(jnp.ones((5, 2)), 2.0)
  by_name(batch=jnp.ones((6, 2)), scale=2.0)
  assert by_name.tracker.examples == 5 + 6
  const = track(f, examples=32)
  const(jnp.ones((5, 2)), 1.0)
  assert const.tracker.examples == 32
  with pytest.raises(ValueError, match="has no argument 'images'"):
    track(f, examples="images")
  with pytest.raises(ValueError, match="kind='test'"):
    track(f, kind="test")
  with pytest.raises(TypeError, match="examples="):
    track(f, examples=1.5)
  with pytest.raises(TypeError, match="int >= 0"):
    track(f, examples=lambda a, k: -1)(jnp.ones(2), 1.0)


def test_no_device_to_host_transfer():
  step, params, opt = _make()
  tracked = track(jax.jit(step), examples="batch")
  batch = jax.device_put(_batch())
  tracked(params, opt, batch)  # first call counts (traces) outside the guard
  with jax.transfer_guard_device_to_host("disallow"):
    p, o = tracked(params, opt, batch)
    p, o = tracked(p, o, batch)
  assert tracked.tracker.steps == 3


def test_trial_attribution_train_and_eval():
  step, params, opt = _make()
  train = track(jax.jit(step), examples="batch")
  evaluate = track(jax.jit(_loss), kind="eval", examples="batch")
  exp = Experiment("attr", ledger=None)
  train(params, opt, _batch())  # outside any trial: only the tracker's totals
  with exp.trial({"lr": 0.1}) as trial:
    p, o = params, opt
    for _ in range(4):
      p, o = train(p, o, _batch())
    evaluate(p, _batch(4))
  tag = exp.price_tag()
  (t,) = tag.trials
  per_step = jaxgreen.count(step)(params, opt, _batch()).fpo
  per_eval = jaxgreen.count(_loss)(params, _batch(4)).fpo
  assert (t.train_steps, t.train_examples, t.train_fpo) == (4, 4 * B, 4 * per_step)
  assert (t.eval_steps, t.eval_examples, t.eval_fpo) == (1, 4, per_eval)
  assert trial.train_fpo == 4 * per_step
  assert train.tracker.steps == 5
  assert tag.h == 1 and t.status == "completed"


def test_count_failure_is_recorded_not_raised():
  def weird(x):
    return jax.pure_callback(lambda v: v, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

  f = track(jax.jit(weird), examples=1, strict=True)  # strict: no rule -> the count raises
  with pytest.warns(UserWarning, match="could not count"):
    out = f(jnp.ones(3))
  np.testing.assert_array_equal(out, jnp.ones(3))  # training goes on
  (entry,) = f.tracker.entries.values()
  assert f.tracker.steps == 1 and entry.fpo == 0 and not entry.cost.exact


def test_decorator_without_arguments_and_partial():
  @track
  def step(batch):
    return batch * 2.0

  step(jnp.ones((3, 2)))
  assert step.tracker.examples == 3  # "batch" is found by name
  assert isinstance(track(kind="eval"), functools.partial)


def test_calls_inside_an_outer_trace_are_not_steps():
  inner = track(jax.jit(lambda x: x * 2.0), examples=1)
  inner(jnp.ones(3))  # a real step
  outer = jax.jit(lambda x: inner(x) + 1.0)
  for _ in range(3):
    outer(jnp.ones(3))
  jax.lax.scan(lambda c, _: (inner(c), None), jnp.ones(3), None, length=4)
  assert inner.tracker.steps == 1  # only the top-level call ran as a step of its own


def test_trials_ended_out_of_order_attribute_steps_to_the_running_one():
  step = track(jax.jit(lambda x: x * 2.0), examples=1)  # 3 MUL per call
  exp = Experiment("order", ledger=None)
  first = exp.trial(name="first").start()
  second = exp.trial(name="second").start()
  first.end()  # the later trial stays the active one
  step(jnp.ones(3))
  assert current_trial() is second and (first.steps, second.steps) == (0, 1)
  second.end()  # the first trial has ended: it must not be revived
  step(jnp.ones(3))
  assert current_trial() is None and (first.steps, second.steps) == (0, 1)


def test_a_failed_end_write_keeps_the_steps(monkeypatch, tmp_path):
  import sqlite3

  step = track(jax.jit(lambda x: x * 2.0), examples=1)  # 3 MUL per call
  exp = Experiment("kept", ledger=tmp_path / "green.sqlite")
  real_write = exp.ledger.write

  def broken(fn, timeout=None):
    raise sqlite3.OperationalError("disk I/O error")

  trial = exp.trial().start()
  for _ in range(4):
    step(jnp.ones(3))
  monkeypatch.setattr(exp.ledger, "write", broken)
  with pytest.warns(UserWarning, match="disk I/O error.*kept in memory"):
    trial.end()  # never raises into training
  assert trial.status == "completed" and trial in exp._open  # still owed to the ledger
  with pytest.raises(sqlite3.OperationalError):
    exp.flush()  # an explicit flush reports the failure
  monkeypatch.setattr(exp.ledger, "write", real_write)
  exp.flush()
  (t,) = exp.price_tag().trials
  assert (t.status, t.train_steps, t.train_fpo) == ("completed", 4, 4 * 3)  # 4 calls x 3 MUL
  assert trial not in exp._open
  exp.close()


def test_an_examples_error_never_discards_a_step_that_ran():
  ran = []

  def plain(batch):
    if not isinstance(batch, jax.core.Tracer):  # a real run, not the count's trace
      ran.append(1)
    return batch * 2.0

  with pytest.raises(TypeError, match="int >= 0"):
    track(plain, examples=lambda a, k: -1)(jnp.ones(2))
  assert ran == []  # raised before the step ran: nothing was lost

  f = track(jax.jit(lambda batch: batch * 2.0), examples="batch")
  f(jnp.ones(3))  # the fast path is set for float32[3]
  with pytest.warns(UserWarning, match="not recorded"):
    out = f(jnp.ones(()))  # a new signature without a batch dimension, after the step
  np.testing.assert_array_equal(out, 2.0)  # the step's output is returned
  with pytest.raises(ValueError, match="leading"):
    f(jnp.ones(()))  # next time the error comes before the step
  assert f.tracker.steps == 1
