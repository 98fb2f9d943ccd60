"""The cost model's documented defaults: the conventions guide's table comes from the code."""

from pathlib import Path

from jaxgreen._src import cost_model


def test_documented_cost_model_table_matches_the_code():
  guide = (Path(__file__).parent.parent / "docs" / "guides" / "conventions.md").read_text()
  assert cost_model.markdown_table() in guide, (
      "docs/guides/conventions.md's cost-model table is stale: regenerate it with "
      "`python -m jaxgreen._src.cost_model`")


def test_every_transcendental_has_a_price():
  missing = cost_model.TRANSCENDENTALS - set(cost_model.DEFAULT_PRICES)
  assert not missing


def test_price_table_names_are_unique():
  names = [n for names, _, _ in cost_model.PRICE_TABLE for n in names]
  assert len(names) == len(set(names))


def test_a_misspelled_price_is_an_error_with_a_suggestion():
  import pytest

  with pytest.raises(ValueError, match="did you mean .*'tanh'"):
    cost_model.CostModel({"tahn": (1, 1)})
