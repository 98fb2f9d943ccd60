"""Loops and branches: scan x length, while trip counts, cond/switch policies."""

import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxgreen

S = jax.ShapeDtypeStruct
F32 = jnp.float32
X4 = S((4,), F32)


def test_scan_of_matmul_is_length_times_body():
  def f(a, b):
    return lax.scan(lambda c, _: (c @ b, None), a, None, length=10)[0]

  c = jaxgreen.count(f)(S((64, 64), F32), S((64, 64), F32))
  assert c.muls == 10 * 64**3  # length·M·N·K
  assert c.adds == 10 * 64 * 64 * 63  # length·M·N·(K-1)
  assert c.exact


def test_nested_scans_multiply():
  def f(x):
    def outer(c, _):
      return lax.scan(lambda d, _: (d * 2.0, None), c, None, length=3)[0], None
    return lax.scan(outer, x, None, length=5)[0]

  c = jaxgreen.count(f)(X4)
  assert c.muls == 5 * 3 * 4  # outer·inner·elements


def test_scan_over_xs_and_reverse():
  def f(xs):
    return lax.scan(lambda c, x: (c + x, c * x), jnp.zeros(8), xs, reverse=True)

  c = jaxgreen.count(f)(S((7, 8), F32))
  assert c.adds == 7 * 8  # length·elements
  assert c.muls == 7 * 8


def _counted(cmp, start, stop, step, bound_in_carry):
  def f(x):
    def cond(c):
      i, b, _ = c
      return cmp(i, b if bound_in_carry else stop)

    def body(c):
      i, b, y = c
      return i + step, b, y * 2.0

    return lax.while_loop(cond, body, (jnp.int32(start), jnp.int32(stop), x))[2]
  return f


@pytest.mark.parametrize("bound_in_carry", [False, True], ids=["literal", "carry"])
@pytest.mark.parametrize("cmp,start,stop,step,trips", [
    (operator.lt, 0, 10, 3, 4),   # 0 3 6 9
    (operator.le, 0, 9, 3, 4),    # 0 3 6 9
    (operator.le, 0, 10, 3, 4),
    (operator.gt, 10, 0, -3, 4),  # 10 7 4 1
    (operator.ge, 10, 0, -2, 6),  # 10 8 6 4 2 0
    (operator.ne, 0, 12, 3, 4),
    (operator.ne, 12, 0, -4, 3),
    (lambda i, b: b > i, 0, 10, 2, 5),  # bound on the left
    (operator.lt, 5, 0, 1, 0),    # never entered
], ids=["lt", "le-exact", "le", "gt-neg", "ge-neg", "ne", "ne-neg", "mirrored", "empty"])
def test_counted_while_loops_are_exact(cmp, start, stop, step, trips, bound_in_carry):
  c = jaxgreen.count(_counted(cmp, start, stop, step, bound_in_carry))(X4)
  assert c.exact, c.inexact
  assert c.muls == trips * 4  # trips·elements


@pytest.mark.parametrize("make", [
    lambda: (lambda x: lax.fori_loop(0, 7, lambda i, y: y * 2.0, x)),
    lambda: (lambda x: lax.fori_loop(jnp.int32(0), jnp.int32(7), lambda i, y: y * 2.0, x)),
    lambda: (lambda x: lax.fori_loop(0, jnp.asarray(np.int32(7)), lambda i, y: y * 2.0, x)),
    lambda: (lambda x: lax.fori_loop(0, jnp.int32(3) + 4, lambda i, y: y * 2.0, x)),
    lambda: (lambda x: lax.fori_loop(0, jnp.int32(15) // 2, lambda i, y: y * 2.0, x)),
], ids=["python", "traced-literal", "const", "computed", "floordiv"])
def test_fori_loop_with_traced_but_constant_bounds(make):
  c = jaxgreen.count(make())(X4)
  assert c.exact, c.inexact
  assert c.muls == 7 * 4  # trips·elements


def test_hand_written_counter_with_bound_and_step_in_consts():
  stop = jnp.asarray(np.array(6, np.int32))
  step = jnp.asarray(np.array(2, np.int32))

  def f(x):
    def cond(c):
      return c[0] < stop

    def body(c):
      return c[0] + step, c[1] * 2.0

    return lax.while_loop(cond, body, (0, x))[1]

  c = jaxgreen.count(f)(X4)
  assert c.exact, c.inexact
  assert c.muls == 3 * 4  # 0 2 4: trips·elements


def test_nested_fori_loops_multiply():
  def f(x):
    inner = lambda i, y: lax.fori_loop(0, 3, lambda j, z: z * 2.0, y)  # noqa: E731
    return lax.fori_loop(0, 5, inner, x)

  c = jaxgreen.count(f)(X4)
  assert c.exact
  assert c.muls == 5 * 3 * 4


def _data_dependent(x):
  return lax.while_loop(lambda y: jnp.sum(y) < 100.0, lambda y: y * 2.0, x)


def test_data_dependent_while_is_inexact_and_named():
  c = jaxgreen.count(_data_dependent)(X4)
  assert not c.exact
  assert len(c.inexact) == 1 and "while loop" in c.inexact[0]
  # One iteration, as at the HLO stages: body once, condition twice (trips + 1).
  assert c.muls == 4  # body once
  assert c.adds == 2 * (3 + 1)  # condition twice: sum of 4, one compare
  for stage in ("lowered", "compiled"):
    h = jaxgreen.count(_data_dependent, stage=stage)(X4)
    assert (h.adds, h.muls, h.exact) == (c.adds, c.muls, False), stage


def test_trip_counts_override_int_and_by_scope():
  c = jaxgreen.count(_data_dependent, trip_counts=10)(X4)
  assert c.muls == 10 * 4  # trips·elements
  assert c.adds == 11 * (3 + 1)  # condition runs trips + 1 times
  # Exact given the user's figure, and the Cost says the count rests on it.
  assert c.exact and c.assumed == (
      "while loop at scope '<top level>': 10 trips, as given by trip_counts=",)
  assert "rests on a given figure" in c.table() and "assumed=1" in repr(c)
  assert jaxgreen.Cost.from_json(c.to_json()).assumed == c.assumed
  scope = jaxgreen.count(_data_dependent)(X4).inexact[0].split("'")[1]
  assert scope == "<top level>"
  c = jaxgreen.count(_data_dependent, trip_counts={"<top level>": 5})(X4)
  assert c.muls == 5 * 4


def test_trip_counts_do_not_override_a_proven_count():
  f = lambda x: lax.fori_loop(0, 7, lambda i, y: y * 2.0, x)  # noqa: E731
  c = jaxgreen.count(f, trip_counts=100)(X4)
  assert c.muls == 7 * 4 and c.assumed == ()  # proven: the given figure is not used


def test_trip_counts_by_named_scope():
  def f(x):
    with jax.named_scope("solver"):
      return _data_dependent(x)

  c = jaxgreen.count(f)(X4)
  assert "'solver'" in c.inexact[0]
  c = jaxgreen.count(f, trip_counts={"solver": 3})(X4)
  assert c.exact and c.muls == 3 * 4


def _branches(p, x):
  return lax.cond(p, lambda y: y * y * y, lambda y: y + 1.0, x)  # 2·4 MUL vs 4 ADD


@pytest.mark.parametrize("policy,muls,adds", [
    ("max", 2 * 4, 0),
    ("min", 0, 4),
    ("mean", 4, 2),  # (8 + 0) / 2 MUL, (0 + 4) / 2 ADD
])
def test_cond_policies(policy, muls, adds):
  c = jaxgreen.count(_branches, cond=policy)(S((), jnp.bool_), X4)
  assert (c.muls, c.adds) == (muls, adds)
  assert c.cond == policy


def test_switch_mean_over_three_branches_is_a_fraction():
  def f(i, x):
    return lax.switch(i, [lambda y: y * 2.0, lambda y: y * y * 2.0, lambda y: y], x)

  c = jaxgreen.count(f, cond="mean")(S((), jnp.int32), X4)
  assert c.muls == 3 * 4 / 3  # (4 + 8 + 0) / 3
  c = jaxgreen.count(f, cond="mean")(S((), jnp.int32), S((5,), F32))
  assert c.muls == pytest.approx(15 / 3 * 1)  # (5 + 10 + 0) / 3
  assert c.muls == 5


def test_constant_branch_index_counts_that_branch_exactly():
  def f(x):
    return lax.switch(2, [lambda y: y * 2.0, lambda y: y + 1.0, lambda y: y * y * y], x)

  c = jaxgreen.count(f, cond="min")(X4)
  assert c.muls == 2 * 4


def test_unknown_loop_in_a_branch_not_picked_stays_visible():
  def f(p, x):
    return lax.cond(p, lambda y: y * y * y * y * y, _data_dependent, x)

  c = jaxgreen.count(f, cond="max")(S((), jnp.bool_), X4)
  assert c.muls == 4 * 4  # the first branch is costlier (16 > 4 + 2·4 of one iteration)
  assert not c.exact and c.inexact
  for stage in ("lowered", "compiled"):
    h = jaxgreen.count(f, cond="max", stage=stage)(S((), jnp.bool_), X4)
    assert h.muls == 4 * 4 and not h.exact, stage


def test_cond_with_bool_index_and_uncounted_in_other_branch():
  fake = jax.extend.core.Primitive("cf_fake_op")
  fake.def_abstract_eval(lambda x: x)

  def f(p, x):
    return lax.cond(p, lambda y: y * y * y, lambda y: fake.bind(y), x)

  with pytest.warns(jaxgreen.UncountedPrimitiveWarning, match="cf_fake_op"):
    c = jaxgreen.count(f)(S((), jnp.bool_), X4)
  assert c.uncounted == {"cf_fake_op": 1}
  assert c.muls == 2 * 4


def test_inner_loop_bounded_by_an_outer_pass_through_carry():
  def f(x):
    def body(c):
      i, n, y = c
      y = lax.fori_loop(0, n, lambda j, z: z * 2.0, y)  # n: a carry never changed
      return i + 1, n, y

    return lax.while_loop(lambda c: c[0] < 3, body, (0, jnp.int32(5), x))[2]

  c = jaxgreen.count(f)(X4)
  assert c.exact, c.inexact
  assert c.muls == 3 * 5 * 4  # outer·inner·elements


def test_inner_loop_bounded_by_a_scan_constant():
  def f(x):
    n = jnp.int32(2) * 3
    return lax.scan(lambda c, _: (lax.fori_loop(0, n, lambda j, z: z * 2.0, c), None), x,
                    None, length=4)[0]

  c = jaxgreen.count(f)(X4)
  assert c.exact, c.inexact
  assert c.muls == 4 * 6 * 4  # scan·fori·elements


def test_bound_folded_inside_the_condition():
  # the bound is lax.div of a pass-through carry, computed in the loop's condition
  def f(x):
    def body(c):
      i, n, y = c
      return i + 1, n, y * 2.0

    return lax.while_loop(lambda c: c[0] < lax.div(c[1], 2), body,
                          (0, jnp.int32(12), x))[2]

  c = jaxgreen.count(f)(X4)
  assert c.exact, c.inexact
  assert c.muls == 12 // 2 * 4  # trips·elements
