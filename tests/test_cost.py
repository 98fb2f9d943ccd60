"""Cost and Counts arithmetic, serialisation, and CostModel validation."""

import json

import numpy as np
import pytest

import jaxgreen
from jaxgreen import Cost, CostModel, Counts
from jaxgreen._src.cost_model import DEFAULT_PRICES


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


def test_table_lists_fpo_rows_only_and_names_integer_only_work():
  import jax
  import jax.numpy as jnp

  def f(x, i):  # index arithmetic (integer) beside one float multiply
    return x[(i * 3 + 1) % 4] * 2.0

  c = jaxgreen.count(f)(jax.ShapeDtypeStruct((4,), jnp.float32),
                        jax.ShapeDtypeStruct((), jnp.int32))
  assert c.fpo == 1 and c.int_ops > 0  # one MUL; the index math is integer
  text = c.table()
  rows = [line.split() for line in text.splitlines()]
  assert ["mul", "1", "0", "1", "100.0%"] in rows
  # No row of zero FPO (the integer adds, rem) in a table of FPO...
  assert not any(r[1:5] == ["0", "0", "0", "0.0%"] for r in rows if len(r) == 5)
  # ...but a line says which primitives did integer-only work.
  assert "integer-only primitives (no FPO, in 'integer ops'): " in text
  assert "rem" in text.split("integer-only primitives")[1]


def test_fractional_counts_print_rounded_and_say_so():
  c = Cost(adds=2.5, muls=4, by_primitive={"add": Counts(adds=2.5)})  # a cond "mean"; 2.5/6.5
  text = c.table()
  assert ["FPO", "(ADD", "+", "MUL)", "~7", "6.5"] in [line.split() for line in text.splitlines()]
  assert ["add", "~3", "~3", "0", "38.5%"] in [line.split() for line in text.splitlines()]
  assert "~: a fraction rounded" in text
  assert "~" not in _cost().table()  # integers: no mark, no note


def test_repr_stays_one_line_and_ipython_shows_the_table():
  c = _cost()
  assert repr(c).startswith("Cost(fpo=7,") and "\n" not in repr(c)

  class Printer:  # IPython's RepresentationPrinter, as far as _repr_pretty_ uses it
    def __init__(self):
      self.out = ""

    def text(self, s):
      self.out += s

  p = Printer()
  c._repr_pretty_(p, False)
  assert p.out == c.table()
  p = Printer()
  c._repr_pretty_(p, True)
  assert p.out == repr(c)


def test_html_view_holds_exact_totals_and_a_foldable_scope_tree():
  c = Cost(adds=3_000_000_001, muls=5,
           by_primitive={"dot_general": Counts(adds=3_000_000_001, muls=5)},
           by_scope={"Model/block_0/mlp": Counts(adds=3_000_000_000, muls=4),
                     "Model/block_0": Counts(adds=1, muls=1), "": Counts(int_ops=7)})
  out = c._repr_html_()
  assert "3,000,000,006" in out  # the exact total, not only "3.00 G"
  assert "<script" not in out and "http" not in out
  # Model (subtotal 3,000,000,006) > block_0 (same) > mlp (3,000,000,004): a tree with two
  # foldable parents; the integer-only top level is no FPO row.
  assert out.count("<details") == 2 + 2  # plus the two sections
  assert out.index(">Model<") < out.index(">block_0<") < out.index(">mlp<")
  assert "&lt;top level&gt;" not in out
  # A view of a model with thousands of scopes stays small, and says what it left out.
  many = Cost(adds=2005, by_scope={f"s{i}": Counts(adds=1) for i in range(2005)})
  assert "... and 5 more scopes (all: to_pandas(by=&#x27;scope&#x27;))" in many._repr_html_()


def test_to_pandas_rows_add_up_to_the_totals():
  pd = pytest.importorskip("pandas", reason="to_pandas needs the [pandas] extra")
  c = _cost(3)
  df = c.to_pandas()
  assert isinstance(df, pd.DataFrame)
  assert list(df["primitive"]) == ["mul", "add"]  # by FPO
  assert df["fpo"].sum() == c.fpo and df["muls"].sum() == c.muls
  assert list(c.to_pandas("scope")["scope"]) == ["a"]
  with pytest.raises(ValueError, match="by='source'"):
    c.to_pandas("source")
