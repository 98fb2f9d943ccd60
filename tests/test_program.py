"""jaxgreen._src.program.Program: one function at its stages, traced once, and the counters that
read their stages from it."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import pytest

import jaxgreen
import jaxgreen._src.pods
from jaxgreen._src.api import count_program
from jaxgreen._src.program import Program, static_argnums_of

X = jax.ShapeDtypeStruct((8, 16), jnp.float32)
W = jax.ShapeDtypeStruct((16, 4), jnp.float32)


def _traced_counter():
  calls = []

  def f(a, b, n):
    calls.append(1)  # a Python side effect: runs once per trace
    for _ in range(n):
      a = jnp.tanh(a)
    return a @ b

  return f, calls


def test_traced_once_across_all_stages():
  f, calls = _traced_counter()
  p = Program(f, (X, W, 2), static_argnums=2)
  assert p.jaxpr is p.jaxpr  # cached
  p.lowered, p.lowered_text, p.compiled, p.compiled_text, p.kernel_table  # noqa: B018
  assert "dot" in p.compiled_text and "stablehlo.dot_general" in p.lowered_text
  assert len(p.kernel_table) == 0  # no pallas_call
  assert len(calls) == 1


def test_traced_once_from_the_compiled_end():
  f, calls = _traced_counter()
  p = Program(f, (X, W, 1), static_argnums=(2,))
  p.compiled_text, p.lowered, p.jaxpr, p.traced  # noqa: B018
  assert p.lowered is p._compiled[0]  # the compiled stage's own lowering, not another
  assert len(calls) == 1


def test_count_at_each_stage_agrees_with_the_program():
  f, _ = _traced_counter()
  for stage in ("jaxpr", "lowered", "compiled"):
    p = Program(f, (X, W, 1), static_argnums=2)
    via_count = jaxgreen.count(f, static_argnums=2, stage=stage)(X, W, 1)
    assert count_program(p, stage) == via_count
  c = jaxgreen.count(lambda a, b: a @ b)(X, W)
  assert c.muls == 8 * 4 * 16  # rows·cols·inner
  assert c.adds == 8 * 4 * 15  # rows·cols·(inner-1)


def test_reconcile_and_compare_agree_with_the_program():
  f = lambda a, b: jnp.tanh(a) @ b  # noqa: E731
  p = Program(f, (X, W))
  jaxpr = count_program(p)
  compiled = count_program(p, "compiled")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    r = jaxgreen.reconcile(f, targets=["cpu"], progress=False)(X, W)["cpu"]
    cmp = jaxgreen.compare(f, ["cpu"], progress=False)(X, W)["cpu"]
  assert r.jaxpr == jaxpr and r.compiled == compiled
  assert r.lowered == count_program(p, "lowered")
  assert cmp.pod.logical == jaxpr and cmp.pod.per_device.fpo == compiled.fpo


def test_static_argnums_normalised_once():
  assert static_argnums_of(1) == (1,)
  assert static_argnums_of([0, 2]) == (0, 2)
  assert Program(lambda a, n: a * n, (X, 3), static_argnums=1).static_argnums == (1,)


@pytest.mark.parametrize("bad", ["1", 1.0, True, (0, "x"), None])
@pytest.mark.parametrize("caller, make", [
    ("count", lambda bad: jaxgreen.count(lambda a: a, static_argnums=bad)),
    ("reconcile", lambda bad: jaxgreen.reconcile(lambda a: a, static_argnums=bad)),
    ("compare", lambda bad: jaxgreen.compare(lambda a: a, ["cpu"], static_argnums=bad)),
    ("analyze", lambda bad: jaxgreen._src.pods.analyze(lambda a: a, "cpu", X,
                                                  static_argnums=bad)),
    ("Program", lambda bad: Program(lambda a: a, (X,), static_argnums=bad,
                                    caller="Program")),
])
def test_bad_static_argnums_name_the_argument(caller, make, bad):
  with pytest.raises(TypeError, match=rf"{caller}\(static_argnums=.*must be an int or a "
                                      rf"sequence of ints"):
    make(bad)


def test_not_callable_names_the_argument():
  with pytest.raises(TypeError, match=r"count\(fn=\.\.\.\) must be callable"):
    Program(3, ())  # type: ignore[arg-type]


def test_read_only():
  p = Program(lambda a: a, (X,))
  with pytest.raises(AttributeError, match="read-only"):
    p.args = ()  # type: ignore[misc]


def test_non_array_leaves_are_fixed():
  # A pytree holding a function: arrays traced, the function fixed, as Equinox splits.
  p = Program(lambda prm, x: prm["act"](x * prm["w"]),
              ({"act": jnp.tanh, "w": jax.ShapeDtypeStruct((3,), jnp.float32)},
               jax.ShapeDtypeStruct((3,), jnp.float32)))
  assert len(p.args) == 2 and p.static_argnums == ()
  assert [e.primitive.name for e in p.jaxpr.eqns] == ["mul", "tanh"]


def test_nnx_state_is_an_output():
  nnx = pytest.importorskip("flax.nnx", reason="flax's nnx is needed for nnx state")

  class Counter(nnx.Module):
    def __init__(self):
      self.w = nnx.Param(jnp.ones(3))

    def __call__(self, x):
      self.w[...] = self.w[...] * 2.0  # updated in place: an output of the program
      return jnp.sum(x)

  def step(m, x):
    return m(x)

  p = Program(step, (Counter(), jnp.ones(3)))
  c = count_program(p)
  assert c.muls == 3  # the in-place doubling of w survives dead-code elimination
  assert c.adds == 3 - 1  # the sum


def test_compile_fallback_only_on_tpu(monkeypatch):
  import jaxgreen.targets as targets

  class Unreadable:
    def as_text(self):
      raise RuntimeError("INTERNAL: async-update instruction should have 1 operands")

  class Lowered:
    def compile(self, compiler_options=None):
      assert compiler_options == {"xla_tpu_offload_gather_to_sparsecore": "false"}
      return type("Readable", (), {"as_text": lambda self: "HloModule m"})()

  class FakeTarget:
    platform = "tpu"

    def compile(self, fn, *args, static_argnums=(), **kwargs):
      return Lowered(), Unreadable()

  monkeypatch.setattr(targets, "get_target", lambda t: t)
  p = Program(lambda x: x, (1.0,), target=FakeTarget())  # type: ignore[arg-type]
  assert p.compiled_text == "HloModule m" and "compiled again" in p.notes[0]
  assert p.lowered is p._compiled[0]


@pytest.mark.parametrize("entry, caller", [
    (lambda f, x: jaxgreen.count(f)(x), "count"),
    (lambda f, x: jaxgreen.reconcile(f)(x), "reconcile"),
    (lambda f, x: jaxgreen.compare(f, ["cpu"])(x), "compare"),
])
def test_every_entry_refuses_a_negative_dimension_naming_itself(entry, caller):
  # Counted, it would be negative work: one check, in Program, for every entry point.
  with pytest.raises(ValueError, match=rf"^{caller}\(\.\.\.\)\(\.\.\.\): .*negative"):
    entry(lambda x: x * 2, jax.ShapeDtypeStruct((4, -1), jax.numpy.float32))
