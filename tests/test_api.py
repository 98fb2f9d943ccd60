"""The public surface: imports, count() argument handling, and errors that name the fix."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgreen


def test_public_names_resolve():
  for name in jaxgreen.__all__:
    assert getattr(jaxgreen, name) is not None, name
  assert isinstance(jaxgreen.__version__, str)
  assert set(jaxgreen.__all__) == set(jaxgreen._LAZY) | set(jaxgreen._SUBMODULES)
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    jaxgreen.nope  # noqa: B018


def test_public_functions_are_not_shadowed_by_modules():
  # Importing every module of the package must leave jaxgreen.compare, .reconcile and
  # .track the functions (a module of the same name would replace the attribute), and
  # the name the CLI's help and errors give for a compare setup must exist.
  import importlib
  import pkgutil
  import types

  for m in pkgutil.walk_packages(jaxgreen.__path__, "jaxgreen."):
    if m.name != "jaxgreen.__main__":
      importlib.import_module(m.name)
  for name in ("compare", "reconcile", "track", "count", "mesh"):
    assert callable(getattr(jaxgreen, name)), name
    assert not isinstance(getattr(jaxgreen, name), types.ModuleType), name
  assert jaxgreen.Setup.__name__ == "Setup"


def _matmul(a, b):
  return a @ b


@pytest.mark.parametrize("make", [
    lambda: (jnp.ones((8, 16)), jnp.ones((16, 4))),
    lambda: (np.ones((8, 16), np.float32), np.ones((16, 4), np.float32)),
    lambda: (jax.ShapeDtypeStruct((8, 16), jnp.float32),
             jax.ShapeDtypeStruct((16, 4), jnp.float32)),
], ids=["jax-arrays", "numpy-arrays", "shape-dtype-structs"])
@pytest.mark.parametrize("jit", [False, True], ids=["plain", "jit"])
def test_count_accepts_arrays_and_structs_plain_and_jitted(make, jit):
  fn = jax.jit(_matmul) if jit else _matmul
  c = jaxgreen.count(fn)(*make())
  assert c.muls == 8 * 4 * 16  # M·N·K
  assert c.adds == 8 * 4 * 15  # M·N·(K-1)
  assert c.fpo == c.adds + c.muls
  assert c.exact


def test_pytrees_kwargs_and_python_scalars():
  def f(params, x, *, scale):
    return jnp.tanh(x @ params["w"] + params["b"]) * scale

  params = {"w": jax.ShapeDtypeStruct((3, 5), jnp.float32),
            "b": jax.ShapeDtypeStruct((5,), jnp.float32)}
  c = jaxgreen.count(f)(params, jax.ShapeDtypeStruct((2, 3), jnp.float32), scale=2.0)
  tanh_adds, tanh_muls = jaxgreen.CostModel().price("tanh")
  assert c.muls == 2 * 5 * 3 + 2 * 5 * tanh_muls + 2 * 5  # dot + tanh + scale
  assert c.adds == 2 * 5 * 2 + 2 * 5 + 2 * 5 * tanh_adds  # dot + bias + tanh
  assert c.transcendentals == 2 * 5  # one tanh per output


def test_static_argnums():
  def f(x, n):
    for _ in range(n):
      x = x * x
    return x

  c = jaxgreen.count(f, static_argnums=1)(jnp.ones(4), 3)
  assert c.muls == 3 * 4  # n squarings of 4 elements
  c1 = jaxgreen.count(f, static_argnums=(1,))(jnp.ones(4), 1)
  assert c1.muls == 4


def test_count_keeps_function_metadata():
  counted = jaxgreen.count(_matmul)
  assert counted.__name__ == "_matmul"
  assert counted.__wrapped__ is _matmul


def test_partial_and_lambda():
  c = jaxgreen.count(functools.partial(jnp.multiply, 3.0))(jnp.ones((2, 2)))
  assert c.muls == 2 * 2


@pytest.mark.parametrize("kwargs, match", [
    ({"cond": "average"}, "cond='average'"),
    ({"cost_model": {"exp": (1, 1)}}, "jaxgreen.CostModel"),
    ({"trip_counts": "10"}, "trip_counts"),
])
def test_bad_options_name_the_argument(kwargs, match):
  with pytest.raises((ValueError, TypeError), match=match):
    jaxgreen.count(_matmul, **kwargs)


def test_not_callable():
  with pytest.raises(TypeError, match="must be callable"):
    jaxgreen.count(3)


def test_cost_model_override_changes_only_that_price():
  f = lambda x: jnp.exp(x)  # noqa: E731
  x = jax.ShapeDtypeStruct((10,), jnp.float32)
  default = jaxgreen.count(f)(x)
  cheap = jaxgreen.count(f, cost_model=jaxgreen.CostModel({"exp": (1, 2)}))(x)
  assert (cheap.adds, cheap.muls) == (10 * 1, 10 * 2)  # 10 elements x (1 ADD, 2 MUL)
  assert default.transcendentals == cheap.transcendentals == 10
  assert default.fpo == 10 * sum(jaxgreen.CostModel().price("exp"))


def test_cost_table_mentions_totals_and_scopes():
  c = jaxgreen.count(jax.named_scope("layer")(_matmul))(jnp.ones((8, 16)), jnp.ones((16, 4)))
  text = c.table()
  assert "FPO (ADD + MUL)" in text and f"{c.fpo:,}" in text
  assert "layer" in text and "dot_general" in text
  assert "exact: yes" in text


def _ten_matmuls(x):
  return jax.lax.scan(lambda c, _: (c @ c, None), x, None, length=10)[0]


@pytest.mark.parametrize("stage", ["jaxpr", "lowered", "compiled"])
def test_every_stage_counts_the_scan_ten_times(stage):
  c = jaxgreen.count(_ten_matmuls, stage=stage)(jax.ShapeDtypeStruct((64, 64), jnp.float32))
  assert c.muls == 10 * 64**3  # 10 trips of 64·64·64
  assert c.adds == 10 * 64 * 64 * 63  # 10 trips of 64·64·(64-1)


def test_bad_stage_and_target():
  with pytest.raises(ValueError, match="stage='hlo'"):
    jaxgreen.count(_matmul, stage="hlo")
  with pytest.raises(ValueError, match="h1000"):
    jaxgreen.count(_matmul, stage="compiled", target="gpu:h1000")


@pytest.mark.parametrize("trip_counts", [-1, True, 2.5, {"<top level>": "3"}, {3: 1}])
def test_bad_trip_counts_name_the_argument(trip_counts):
  with pytest.raises(TypeError, match=r"trip_counts=.*int >= 0"):
    jaxgreen.count(_matmul, trip_counts=trip_counts)


def test_trip_counts_accept_numpy_ints():
  def f(x):
    return jax.lax.while_loop(lambda y: jnp.sum(y) < 100.0, lambda y: y * 2.0, x)

  c = jaxgreen.count(f, trip_counts={"<top level>": np.int64(4)})(
      jax.ShapeDtypeStruct((3,), jnp.float32))
  assert c.exact and c.muls == 4 * 3  # trips·elements


@pytest.mark.parametrize("static_argnums", ["0", 1.0, (0, "1")])
def test_bad_static_argnums_name_the_argument(static_argnums):
  with pytest.raises(TypeError, match="static_argnums="):
    jaxgreen.count(_matmul, static_argnums=static_argnums)


def test_count_jaxpr_accepts_closed_and_open_jaxprs():
  closed = jax.make_jaxpr(_matmul)(jnp.ones((8, 16)), jnp.ones((16, 4)))
  for j in (closed, closed.jaxpr):
    c = jaxgreen.count_jaxpr(j)
    assert (c.muls, c.adds) == (8 * 4 * 16, 8 * 4 * 15)  # M·N·K, M·N·(K-1)


@pytest.mark.parametrize("args, kwargs, match", [
    ((lambda x: x,), {}, "ClosedJaxpr"),
    (None, {"cost_model": {"exp": (1, 1)}}, r"count_jaxpr\(cost_model=.*CostModel"),
    (None, {"cond": "avg"}, r"count_jaxpr\(cond='avg'\)"),
])
def test_count_jaxpr_errors_name_the_argument(args, kwargs, match):
  closed = jax.make_jaxpr(_matmul)(jnp.ones((2, 3)), jnp.ones((3, 4)))
  with pytest.raises((TypeError, ValueError), match=match):
    jaxgreen.count_jaxpr(*(args or (closed,)), **kwargs)
