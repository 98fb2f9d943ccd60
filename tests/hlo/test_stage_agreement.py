"""The three stages of one program agree, or each difference has a named cause.

Every program is counted from its jaxpr, its lowered StableHLO and its compiled CPU HLO
(through :func:`jaxgreen.reconcile`). A difference between two stages is only allowed
where it is filed under a named cause of the reconciliation:

* ``compiler changes`` (lowered -> compiled): XLA rewrote the program (a division by a
  constant became a multiplication, an add was duplicated into two fusions, ...);
* ``jax lowering`` (jaxpr -> lowered): jax lowered a primitive to other operations;
* ``jaxgreen uncounted``: jaxgreen itself left an operation uncounted at one stage.

The programs list the causes they may show; any other stage difference fails. In every
case the named causes add up to jaxpr FPO - XLA flops with a zero residual, and the
loop conventions agree: a loop of n trips counts its body n times and its condition
n + 1 times at every stage, a loop of unknown trips once and twice.
"""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import jaxgreen
from jaxgreen._src.reconciliation import COMPILER, LOWERING, RESIDUAL, UNCOUNTED, reconcile

F = jnp.float32
S = jax.ShapeDtypeStruct


# -- the programs --------------------------------------------------------------------

def _mlp(p, x):
  h = jax.nn.relu(x @ p["w1"] + p["b1"])
  return h @ p["w2"]


def _mlp_bwd(p, x):
  return jax.grad(lambda p: jnp.sum(_mlp(p, x) ** 2))(p)


def _convnet(w, x):
  y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return lax.reduce_window(jax.nn.relu(y), -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                           "VALID")


def _convnet_bwd(w, x):
  return jax.grad(lambda w: jnp.sum(_convnet(w, x)))(w)


def _attention(q, k, v):
  s = jnp.einsum("bhqd,bhkd->bhqk", q, k) / 8.0
  return jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(s, axis=-1), v)


def _scan_rnn(w, xs):
  def step(h, x):
    h = jnp.tanh(h @ w + x)
    return h, h
  return lax.scan(step, jnp.zeros((4, 8), F), xs)[1]


def _scan_rnn_bwd(w, xs):
  return jax.grad(lambda w: jnp.sum(_scan_rnn(w, xs)))(w)


def _fori(w, x):
  return lax.fori_loop(0, 7, lambda i, c: jnp.tanh(c @ w), x)


def _fori_traced_bounds(w, x):
  n = jnp.int32(3) + 2  # traced, but constant: 4 trips from 1
  return lax.fori_loop(1, n, lambda i, c: c @ w + 1.0, x)


def _nested_loops(w, x):
  def outer(i, c):
    return lax.fori_loop(0, 3, lambda j, d: d @ w, c) * 2.0
  return lax.fori_loop(0, 4, outer, x)


def _while_unknown(x):
  return lax.while_loop(lambda c: jnp.sum(c) < 100.0, lambda c: c * 2.0 + 1.0, x)


def _while_counter(x):
  def body(c):
    i, y = c
    return i + 2, y * 1.5 + 1.0
  return lax.while_loop(lambda c: c[0] < 9, body, (0, x))[1]  # 5 trips


def _fori_dynamic(n, x):
  return lax.fori_loop(0, n, lambda i, c: c * 2.0, x)  # trips unknown: counted once


def _cond(p, x):
  return lax.cond(p > 0, lambda y: jnp.tanh(y @ y.T), lambda y: y[:, :4] * 2.0 + 1.0, x)


def _switch(i, x):
  return lax.switch(i, [lambda y: y @ y.T, lambda y: jnp.exp(y) @ y.T,
                        lambda y: y[:, :4] * 3.0], x)


def _nested_scan(w, xs):
  def outer(c, x):
    inner = lax.scan(lambda d, _: (jnp.tanh(d @ w), None), c + x, None, length=3)[0]
    return inner, inner.sum()
  return lax.scan(outer, jnp.zeros((4, 8), F), xs)


def _cond_in_loop(w, x):
  def body(i, c):
    return lax.cond(i % 2 == 0, lambda y: y @ w, lambda y: y * 2.0, c)
  return lax.fori_loop(0, 6, body, x)


def _cumsum(x):
  return jnp.cumsum(x, axis=-1)


def _sort_topk(x):
  return jnp.sort(x, axis=-1), lax.top_k(x, 3)[0]


def _layernorm(x, g, b):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) * lax.rsqrt(var + 1e-5) * g + b


def _embedding(table, ids, w):
  return jnp.take(table, ids, axis=0) @ w


def _einsum_batch(a, b):
  return jnp.einsum("bij,bjk->bik", a, b) + jnp.einsum("bij,bij->b", a, a)[:, None, None]


def _complex(z, w):
  return jnp.sum(z * w + (1 + 2j) * z), jnp.abs(z) ** 2


def _remat(w, x):
  f = jax.checkpoint(lambda x: jnp.tanh(x @ w) @ w)
  return jax.grad(lambda x: jnp.sum(f(x)))(x)


def _vmapped(w, xs):
  return jax.vmap(lambda x: jnp.tanh(w @ x) + jnp.dot(x, x))(xs)


def _integer(a, b):
  return (a * b + a // 3) ^ (b << 1), jnp.sum(a)


_MLP_ARGS = ({"w1": S((16, 32), F), "b1": S((32,), F), "w2": S((32, 10), F)}, S((4, 16), F))
_CONV_ARGS = (S((3, 3, 2, 4), F), S((2, 6, 6, 2), F))
_RNN_ARGS = (S((8, 8), F), S((5, 4, 8), F))
_LOOP_ARGS = (S((8, 8), F), S((4, 8), F))

def _jax_expands_complex_abs() -> bool:
  """Newer jax lowers |z| of a complex z to a scaled hypot (compares, selects,
  divisions, a sqrt) instead of one stablehlo.abs: more work than the jaxpr's."""
  z = S((2,), jnp.complex64)
  return "stablehlo.real" in jax.jit(jnp.abs).lower(z).as_text()  # splits re, im


_COMPLEX_CAUSES = (LOWERING, COMPILER) if _jax_expands_complex_abs() else ()

# name -> (function, arguments, causes allowed to be non-zero, xfail reason or None)
PROGRAMS = {
    "mlp_fwd": (_mlp, _MLP_ARGS, (), None),
    # XLA duplicates the bias add into two fusions and folds the 2·x of d(x²).
    "mlp_bwd": (_mlp_bwd, _MLP_ARGS, (COMPILER,), None),
    "convnet": (_convnet, _CONV_ARGS, (), None),
    "convnet_bwd": (_convnet_bwd, _CONV_ARGS, (), None),
    # XLA turns the division of the scores by a constant into a multiplication.
    "attention": (_attention, (S((2, 2, 4, 8), F),) * 3, (COMPILER,), None),
    "scan_rnn": (_scan_rnn, _RNN_ARGS, (), None),
    "scan_rnn_bwd": (_scan_rnn_bwd, _RNN_ARGS, (), None),
    "fori_loop": (_fori, _LOOP_ARGS, (), None),
    "fori_traced_bounds": (_fori_traced_bounds, _LOOP_ARGS, (), None),
    "nested_loops": (_nested_loops, _LOOP_ARGS, (), None),
    "while_unknown": (_while_unknown, (S((4, 8), F),), (), None),
    "while_counter": (_while_counter, (S((4, 8), F),), (), None),
    "fori_dynamic": (_fori_dynamic, (S((), jnp.int32), S((4, 8), F)), (), None),
    "nested_scan": (_nested_scan, _RNN_ARGS, (), None),
    "cond_in_loop": (_cond_in_loop, _LOOP_ARGS, (), None),
    "cond": (_cond, (S((), F), S((4, 8), F)), (), None),
    "switch": (_switch, (S((), jnp.int32), S((4, 8), F)), (), None),
    "cumsum": (_cumsum, (S((4, 16), F),), (), None),
    "sort_topk": (_sort_topk, (S((4, 16), F),), (), None),
    # XLA rewrites the mean's division by a constant as a multiplication.
    "layernorm": (_layernorm, (S((4, 16), F), S((16,), F), S((16,), F)), (COMPILER,), None),
    # XLA drops the max with -inf and divides by the sum through one reciprocal.
    "softmax": (lambda x: jax.nn.softmax(x, axis=-1), (S((4, 16), F),), (COMPILER,), None),
    "embedding": (_embedding, (S((50, 16), F), S((6,), jnp.int32), S((16, 8), F)), (), None),
    "einsum_batch": (_einsum_batch, (S((3, 4, 5), F), S((3, 5, 6), F)), (), None),
    # jax >= 0.12 lowers |z| to a scaled hypot, which XLA then simplifies.
    "complex": (_complex, (S((4, 8), jnp.complex64), S((4, 8), jnp.complex64)),
                _COMPLEX_CAUSES, None),
    "remat": (_remat, _LOOP_ARGS, (), None),
    "vmap": (_vmapped, (S((8, 8), F), S((5, 8), F)), (), None),
    "integer": (_integer, (S((4, 8), jnp.int32), S((4, 8), jnp.int32)), (), None),
}


def _params():
  out = []
  for name, (f, args, allowed, xfail) in PROGRAMS.items():
    marks = [pytest.mark.xfail(reason=xfail, strict=False)] if xfail else []
    out.append(pytest.param(f, args, allowed, id=name, marks=marks))
  return out


@pytest.mark.parametrize("f, args, allowed", _params())
def test_stages_agree_or_differences_are_named(f, args, allowed):
  rep = reconcile(f, targets=["cpu"])(*args)["cpu"]
  j, lo, c = rep.jaxpr, rep.lowered, rep.compiled
  assert lo is not None, "the lowered stage was not counted"
  table = rep.causes
  # Stage differences are named and add up: jaxpr - compiled = uncounted + lowering
  # + compiler changes.
  assert table[UNCOUNTED] + table[LOWERING] + table[COMPILER] == j.fpo - c.fpo * rep.devices
  for cause in (UNCOUNTED, LOWERING, COMPILER):
    if cause not in allowed:
      assert table[cause] == 0, f"{cause}: {table[cause]}\n{rep}"
  if LOWERING not in allowed and UNCOUNTED not in allowed:
    assert (lo.adds, lo.muls) == (j.adds, j.muls)
  if COMPILER not in allowed and UNCOUNTED not in allowed:
    assert (c.adds, c.muls) == (lo.adds, lo.muls)
  # Nothing uncounted unless allowed, and XLA's number fully explained.
  if UNCOUNTED not in allowed:
    assert rep.uncounted == {"jaxpr": {}, "lowered": {}, "compiled": {}}
  assert table[RESIDUAL] == 0
  assert sum(v for v in table.values() if v is not None) == j.fpo - rep.xla.flops * rep.devices
  # Loops of unknown trip count are inexact at every stage alike.
  assert (j.exact, lo.exact, c.exact) == (j.exact,) * 3


@pytest.mark.parametrize("name, trips", [("fori_loop", 7), ("fori_traced_bounds", 4),
                                         ("while_counter", 5), ("while_unknown", None),
                                         ("fori_dynamic", None)])
def test_loop_trips_found_at_every_hlo_stage(name, trips):
  f, args, _, _ = PROGRAMS[name]
  rep = reconcile(f, targets=["cpu"])(*args)["cpu"]
  assert [lp.trips for lp in rep.loops] == [trips]
  assert rep.jaxpr.exact == (trips is not None)


def test_unknown_trip_count_is_one_iteration_everywhere():
  # body: y * 2 + 1 on 32 elements (32 MUL, 32 ADD); condition: sum of 32 + compare
  # (31 + 1 ADD), evaluated trips + 1 = 2 times.
  rep = reconcile(_while_unknown, targets=["cpu"])(S((4, 8), F))["cpu"]
  for c in (rep.jaxpr, rep.lowered, rep.compiled):
    assert (c.muls, c.adds) == (32, 32 + 2 * 32)
    assert not c.exact


def test_nested_loops_multiply_at_every_stage():
  rep = reconcile(_nested_loops, targets=["cpu"])(*_LOOP_ARGS)["cpu"]
  for c in (rep.jaxpr, rep.lowered, rep.compiled):
    assert c.muls == 4 * 3 * 4 * 8 * 8 + 4 * 32  # 12 dots of 4x8x8, 4 doublings


@pytest.mark.parametrize("stage", ["jaxpr", "lowered", "compiled"])
def test_given_trip_counts_apply_at_every_stage(stage):
  def f(x, n):
    y = lax.while_loop(lambda c: c.sum() < n, lambda c: c * 1.5 + 1.0, x)
    with jax.named_scope("solver"):
      return lax.while_loop(lambda c: c.max() < n, lambda c: jnp.sin(c) * 2.0, y)

  args = (S((8,), F), S((), F))
  count = jaxgreen.count(f, stage=stage)
  unknown = count(*args)
  named = [why.split(":")[0].split(" (")[0] for why in unknown.inexact]  # HLO adds the op
  assert named == ["while loop at scope '<top level>'", "while loop at scope 'solver'"]
  given = jaxgreen.count(f, stage=stage, trip_counts={"<top level>": 5, "solver": 3})(*args)
  assert given.exact and len(given.assumed) == 2
  # Each body once more per extra trip, each condition too: the first loop's body is
  # 8 MUL + 8 ADD and its condition a sum of 8 and a compare (8 ADD); the second's body
  # 8 sines and 8 MUL, its condition a max of 8 and a compare (8 ADD).
  sine = jaxgreen.count(jnp.sin)(S((8,), F)).fpo
  first, second = (8 + 8) + 8, (sine + 8) + 8
  assert given.fpo == unknown.fpo + 4 * first + 2 * second
  everywhere = jaxgreen.count(f, stage=stage, trip_counts=3)(*args)  # one int for all
  assert everywhere.fpo == unknown.fpo + 2 * first + 2 * second
