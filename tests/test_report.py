"""Plain-text tables: numbers as counts, and tables that fit a terminal."""

from __future__ import annotations

import sys

import pytest

from jaxgreen._src import report


def test_integers_print_as_integers_and_fractions_say_they_are_rounded():
  assert report.number(3_295_673_806.0) == "3,295,673,806"  # a float holding an integer
  assert report.number(2**53) == f"{2**53:,}"  # beyond float precision: still exact
  # A per-device mean of an all-reduce over 8 devices: 7/8 of an ADD per element.
  assert report.number(205_914_076.875) == "~205,914,077"
  assert report.number(0) == "0"


def _wide():
  heads = ["label"] + [f"target {i}\nFPO" for i in range(9)]
  rows = [[f"row {j}"] + [f"{(i + 1) * 10**j:,}" for i in range(9)] for j in range(4)]
  return heads, rows


def test_a_wide_table_is_cut_into_blocks_that_fit_each_with_the_label_column():
  heads, rows = _wide()
  assert len(report.table(heads, rows, width=None).splitlines()[0]) > 90  # uncut: wide
  text = report.table(heads, rows, width=60)
  assert max(len(line) for line in text.splitlines()) <= 60
  blocks = text.split("\n\n")
  assert len(blocks) > 1
  for block in blocks:
    assert [line.split()[:2] for line in block.splitlines()[-4:]] == \
        [["row", str(j)] for j in range(4)]  # every block repeats the label column
  # Every cell is still there, once.
  for i in range(9):
    assert text.count(f"target {i}") == 1
  assert text.count("9,000") == 1


def test_groups_of_columns_stay_in_one_block():
  heads = ["module", "a x", "a y", "a z", "b x", "b y", "b z"]
  rows = [["m" * 10, *(["1" * 12] * 6)]]
  text = report.table(heads, rows, width=60, groups=(3, 3))
  blocks = [b.splitlines()[0].split() for b in text.split("\n\n")]
  assert blocks == [["module", "a", "x", "a", "y", "a", "z"],
                    ["module", "b", "x", "b", "y", "b", "z"]]


def test_a_label_column_too_wide_alone_is_shortened_in_the_middle():
  long = "Transformer/" + "block/" * 40 + "qkv"
  text = report.table(["module", "FPO"], [[long, "1,024"]], width=80)
  assert max(len(line) for line in text.splitlines()) <= 80
  line = text.splitlines()[-1]
  assert line.startswith("Transformer/") and "..." in line and line.endswith("qkv  1,024")


def test_multiline_cells_and_headers():
  text = report.table(["name", "two\nlines"], [["x", "1\n2"], ["y", "3"]])
  assert text.splitlines() == ["        two", "name  lines", "----  -----", "x         1",
                               "          2", "y         3"]


def test_data_frame_names_the_extra_when_pandas_is_missing(monkeypatch):
  monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises
  with pytest.raises(ImportError, match=r"Cost.to_pandas\(\) needs pandas: pip install "
                                        r"'jaxgreen\[pandas\]'"):
    report.data_frame([{"a": 1}], "Cost.to_pandas")
