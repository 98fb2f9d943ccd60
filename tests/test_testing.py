"""jaxgreen.testing: assert_fpo, the diff it prints, and baseline files."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import jaxgreen
from jaxgreen import testing
from jaxgreen.testing import FpoMismatch, assert_fpo

X = jax.ShapeDtypeStruct((8, 16), jnp.float32)
W = jax.ShapeDtypeStruct((16, 4), jnp.float32)
# (8, 16) @ (16, 4): MUL = 8*4*16 = 512, ADD = 8*4*15 = 480, FPO 992.
MATMUL_FPO = 8 * 4 * 16 + 8 * 4 * 15


def matmul(x, w):
  return x @ w


def first(x, w):
  with jax.named_scope("first"):
    return x @ w


def second(x, w):  # the same matmul under another name: the total stays, the scope moves
  with jax.named_scope("second"):
    return x @ w


def test_exact_figure_passes_and_returns_the_cost():
  cost = assert_fpo(matmul, X, W, expected=MATMUL_FPO)
  assert (cost.muls, cost.adds) == (512, 480)


def test_changed_figure_fails_with_totals_and_delta():
  with pytest.raises(FpoMismatch) as e:
    assert_fpo(matmul, X, W, expected=1000)
  msg = str(e.value)
  assert msg.startswith("FPO changed: 1,000 -> 992 (-8, -0.8 %)")
  assert e.value.diff.failed and not e.value.versions_changed


def test_rtol():
  assert_fpo(matmul, X, W, expected=1000, rtol=0.01)  # |992 - 1000| = 8 <= 10
  with pytest.raises(FpoMismatch):
    assert_fpo(matmul, X, W, expected=1000, rtol=0.005)  # 8 > 5


def test_diff_names_the_scopes_and_primitives_that_changed():
  old = jaxgreen.count(lambda x, w: jnp.tanh(x @ w) @ w.T)(X, W)
  with pytest.raises(FpoMismatch) as e:
    assert_fpo(matmul, X, W, expected=old)
  text = str(e.value)
  # The second matmul, (8, 4) @ (4, 16): 8*16*4 MUL + 8*16*3 ADD = 896 FPO, is gone.
  assert "dot_general" in text and "-896" in text
  assert "tanh" in text  # gone too: its whole priced FPO
  assert "adds" in text and "muls" in text


def test_by_scope_fails_when_work_moves_between_scopes():
  old = jaxgreen.count(first)(X, W)
  # Same total, other scope: passes on totals, fails with by_scope.
  assert_fpo(second, X, W, expected=old)
  with pytest.raises(FpoMismatch) as e:
    assert_fpo(second, X, W, expected=old, by_scope=True)
  text = str(e.value)
  assert text.startswith("FPO unchanged (992), but work moved between scopes")
  assert "first" in text and "second" in text


def test_a_version_change_is_named_not_blamed_on_the_program():
  rec = testing.record(jaxgreen.count(matmul)(X, W))
  rec["versions"] = dict(rec["versions"], jax="0.0.1")
  rec["fpo"] += 10
  with pytest.raises(FpoMismatch) as e:
    assert_fpo(matmul, X, W, expected=rec)
  assert e.value.versions_changed == {"jax": ("0.0.1", jax.__version__)}
  assert f"jax 0.0.1 -> {jax.__version__}" in str(e.value)
  assert "not from the program" in str(e.value)
  # Same figures with other versions: nothing to report.
  rec["fpo"] -= 10
  assert_fpo(matmul, X, W, expected=rec)


def test_cost_model_is_part_of_the_record():
  cm = jaxgreen.CostModel({"tanh": (1, 1)})
  a = testing.record(jaxgreen.count(jnp.tanh)(X))
  b = testing.record(jaxgreen.count(jnp.tanh, cost_model=cm)(X), cost_model=cm)
  assert a["versions"]["cost_model"] != b["versions"]["cost_model"]
  assert b["fpo"] == 8 * 16 * 2  # one ADD + one MUL per element


def test_record_is_sorted_json_one_figure_per_line(tmp_path):
  path = tmp_path / "b.fpo.json"
  files = testing.Baselines(path)
  files.put("z", testing.record(jaxgreen.count(matmul)(X, W)))
  files.put("a", {"fpo": 1})
  text = path.read_text()
  assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
  assert list(json.loads(text)["entries"]) == ["a", "z"]
  assert '"dot_general": 992' in text
  assert testing.load(path).get("z")["fpo"] == MATMUL_FPO


def test_expected_can_be_a_baseline_file(tmp_path):
  path = tmp_path / "one.fpo.json"
  testing.Baselines(path).put("matmul", testing.record(jaxgreen.count(matmul)(X, W)))
  assert_fpo(matmul, X, W, expected=path)
  testing.Baselines(path).put("other", {"fpo": 3})
  with pytest.raises(ValueError, match="holds 2 baselines .* name one"):
    assert_fpo(matmul, X, W, expected=str(path))


@pytest.mark.parametrize("expected, err, match", [
    ("nope", FileNotFoundError, "no baseline file nope; record one"),
    (-1, ValueError, "expected FPO must be a finite number >= 0"),
    ([992], TypeError, "expected must be an FPO number, a jaxgreen.Cost or a baseline"),
    (992.0, None, None),
])
def test_bad_expected(expected, err, match):
  if err is None:
    assert_fpo(matmul, X, W, expected=expected)
    return
  with pytest.raises(err, match=match):
    assert_fpo(matmul, X, W, expected=expected)


def test_bad_rtol_and_bad_files(tmp_path):
  with pytest.raises(ValueError, match=r"rtol must be a number in \[0, 1\)"):
    assert_fpo(matmul, X, W, expected=992, rtol=-0.1)
  bad = tmp_path / "bad.fpo.json"
  bad.write_text("{not json")
  with pytest.raises(ValueError, match="not a baseline file .* record it again"):
    testing.load(bad)
  bad.write_text('{"entries": {}}')
  with pytest.raises(ValueError, match="is not a jaxgreen-fpo-baseline/1 file"):
    testing.load(bad)


def test_parallel_writers_never_drop_entries(tmp_path):
  # Test workers (pytest-xdist) write one file at the same time: 3 processes x 15 entries.
  path = str(tmp_path / "shared.fpo.json")
  code = ("import sys\nfrom jaxgreen.testing import Baselines\n"
          "for i in range(15):\n  Baselines(sys.argv[1]).put(f'{sys.argv[2]}-{i}', {'fpo': i})\n")
  procs = [subprocess.Popen([sys.executable, "-c", code, path, who]) for who in "abc"]
  assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
  assert len(testing.load(path).entries) == 3 * 15


def repeated(n: int):
  def f(x, w):
    for _ in range(n):
      x = jnp.tanh(x @ w)  # the line whose FPO doubles
    return jnp.sum(x)

  return f


def test_diff_says_which_line_changed():
  sq = jax.ShapeDtypeStruct((16, 16), jnp.float32)
  once, twice = repeated(1), repeated(2)  # one code, so the same lines
  rec = testing.record(jaxgreen.count(once)(X, sq))
  loop_line = next(k for k in rec["by_source"] if rec["by_source"][k] > 8 * 16 * 31)
  assert loop_line.endswith(f"{once.__code__.co_firstlineno + 2}:repeated.<locals>.f")
  with pytest.raises(FpoMismatch) as e:
    assert_fpo(twice, X, sq, expected=rec)
  text = str(e.value)
  # the loop body's line: 8·16·(16 MUL + 15 ADD) and a tanh per element, now twice
  assert f"{loop_line}: this line's FPO doubled" in text
  assert "source line" in text and "| doubled" not in text and " doubled" in text
  assert e.value.diff.lines == [(loop_line, rec["by_source"][loop_line],
                                 2 * rec["by_source"][loop_line])]
  assert testing.change(3, 3 * 1.5) == "x1.50" and testing.change(5, 0) == "is gone"
  assert f"- {loop_line}: this line's FPO doubled" in e.value.diff.markdown()


def test_bare_number_diffs_show_no_lines():
  with pytest.raises(FpoMismatch) as e:
    assert_fpo(matmul, X, W, expected=1)
  assert "source line" not in str(e.value) and e.value.diff.lines == []
