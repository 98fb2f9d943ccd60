"""Cost and Counts arithmetic, serialisation, and CostModel validation."""

import json

import numpy as np
import pytest

import jaxgreen
from jaxgreen import Cost, CostModel, Counts
from jaxgreen.cost_model import DEFAULT_PRICES


def _cost(k=1):
  return Cost(adds=3 * k, muls=4 * k, transcendentals=k, int_ops=2 * k, bytes=8 * k,
              by_primitive={"mul": Counts(muls=4 * k), "add": Counts(adds=3 * k)},
              by_scope={"a": Counts(adds=3 * k, muls=4 * k)})


def test_counts_add_scale_and_fpo():
  c = Counts(adds=1, muls=2, int_ops=3) + Counts(adds=4, bytes=5)
  assert c == Counts(adds=5, muls=2, int_ops=3, bytes=5)
  assert c.fpo == 5 + 2
  assert 3 * c == c * 3 == Counts(adds=15, muls=6, int_ops=9, bytes=15)
  assert not Counts() and Counts(bytes=1)
  assert c.to_dict()["fpo"] == 7


def test_cost_add_and_sum():
  a, b = _cost(1), _cost(2)
  s = a + b
  assert (s.adds, s.muls, s.transcendentals, s.int_ops, s.bytes) == (9, 12, 3, 6, 24)
  assert s.by_primitive["mul"].muls == 4 + 8
  assert s.by_scope["a"].fpo == 7 + 14
  assert sum([a, b]) == s  # sum() starts at 0
  assert sum([a, a, a]) == a * 3


@pytest.mark.parametrize("k", [0, 1, 7, np.int64(5)])
def test_cost_times_int_stays_exact_int(k):
  c = _cost() * k
  assert c.muls == 4 * int(k) and isinstance(c.muls, int)
  assert c.by_primitive["mul"].muls == 4 * int(k)
  assert (k * _cost()).fpo == 7 * int(k)


def test_cost_scaling_errors():
  with pytest.raises(ValueError, match="k >= 0"):
    _cost() * -1
  with pytest.raises(TypeError):
    _cost() * "3"
  with pytest.raises(TypeError):
    _cost() * True


def test_cost_division_is_exact_when_it_divides():
  c = _cost(2) / 2
  assert c == _cost(1)
  assert isinstance(c.muls, int)
  assert (_cost() / 3).muls == pytest.approx(4 / 3)
  with pytest.raises(ValueError):
    _cost() / 0


def test_exact_reflects_uncounted_and_inexact():
  assert _cost().exact
  assert not Cost(uncounted={"x": 1}).exact
  assert not Cost(inexact=("loop",)).exact
  s = Cost(inexact=("loop",)) + Cost(inexact=("loop",))
  assert s.inexact == ("loop",)  # notes are unique


def test_dict_and_json_round_trip():
  c = _cost() + Cost(uncounted={"my_op": 2}, inexact=("why",), cond="mean")
  assert Cost.from_dict(c.to_dict()) == c
  assert Cost.from_json(c.to_json()) == c
  d = json.loads(c.to_json())
  assert d["fpo"] == 7 and d["exact"] is False and d["uncounted"] == {"my_op": 2}


def test_cost_is_frozen():
  with pytest.raises(AttributeError):
    _cost().adds = 1  # type: ignore[misc]
  with pytest.raises(TypeError):
    _cost().by_primitive["x"] = Counts()  # type: ignore[index]


def test_cost_model_overrides_merge_over_defaults():
  cm = CostModel({"exp": (1, 1)})
  assert cm.price("exp") == (1, 1)
  assert cm.price("log") == DEFAULT_PRICES["log"]
  assert cm.overridden() == {"exp": (1, 1)}
  assert cm.price("no_such_op") is None
  assert cm.is_transcendental("exp") and not cm.is_transcendental("add")


@pytest.mark.parametrize("prices", [
    {"exp": (1,)}, {"exp": (1, -1)}, {"exp": (1.5, 1)}, {"exp": (True, 1)}, {3: (1, 1)},
    {"exp": "cheap"},
])
def test_cost_model_validation_errors_name_the_entry(prices):
  with pytest.raises(ValueError, match="CostModel"):
    CostModel(prices)


def test_cost_model_must_be_a_mapping():
  with pytest.raises(TypeError, match="mapping"):
    CostModel([("exp", (1, 1))])


def test_cost_model_changes_count():
  import jax
  import jax.numpy as jnp

  x = jax.ShapeDtypeStruct((10,), jnp.float32)
  c = jaxgreen.count(jnp.tanh, cost_model=CostModel({"tanh": (2, 3)}))(x)
  assert (c.adds, c.muls) == (20, 30)


@pytest.mark.parametrize("k", [-1, float("nan"), float("inf")])
def test_counts_and_cost_reject_negative_and_non_finite_factors(k):
  with pytest.raises(ValueError, match="finite k >= 0"):
    Counts(adds=1) * k
  with pytest.raises(ValueError, match="finite k >= 0"):
    _cost() * k
  with pytest.raises(ValueError, match="finite k > 0"):
    _cost() / k


def test_cost_model_non_string_key_says_keys_are_names():
  with pytest.raises(ValueError, match="keys are primitive names"):
    CostModel({3: (1, 1)})
