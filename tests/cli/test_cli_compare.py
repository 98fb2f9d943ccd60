"""`jaxgreen compare`: the side-by-side table, JSON, and errors."""

import json
import textwrap

import pytest

from jaxgreen._src.cli import main
from jaxgreen._src.cli.compare import parse_mesh_axes, parse_partition_spec


@pytest.fixture
def model_file(tmp_path):
  path = tmp_path / "model.py"
  path.write_text(textwrap.dedent("""
      import jax

      def scanned(w, x):
          return jax.lax.scan(lambda c, _: (c @ w, None), x, None, length=10)[0]
  """))
  return path


def test_compare_prints_table(model_file, capsys):
  rc = main(["compare", f"{model_file}:scanned", "--arg", "f32[16,16]", "--arg",
             "f32[16,16]", "--target", "cpu"])
  out, err = capsys.readouterr()
  assert rc == 0
  assert "loop trips" in out and "unexplained residual" in out
  assert "compiling for" not in err  # progress only on a terminal


def test_compare_json(model_file, capsys):
  assert main(["compare", f"{model_file}:scanned", "--arg", "f32[16,16]", "--arg",
               "f32[16,16]", "--json"]) == 0
  d = json.loads(capsys.readouterr().out)
  (rep,) = d["targets"]
  assert rep["target"] == "cpu"
  assert rep["jaxpr"]["muls"] == 10 * 16**3  # trips·M·N·K
  assert rep["causes"]["unexplained residual"] == 0


def test_compare_bad_target(model_file, capsys):
  rc = main(["compare", f"{model_file}:scanned", "--arg", "f32[16,16]", "--target",
             "gpu:z9"])
  err = capsys.readouterr().err
  assert rc == 2
  assert "not a known GPU target" in err and "h100" in err


def test_cli_parsers():
  from jax.sharding import PartitionSpec as P

  assert parse_mesh_axes("data=-1, model=2") == {"data": -1, "model": 2}
  with pytest.raises(ValueError, match="NAME=SIZE"):
    parse_mesh_axes("data=two")
  assert parse_partition_spec("data,None") == P("data", None)
  assert parse_partition_spec("(data,model),None") == P(("data", "model"), None)
  assert parse_partition_spec("replicated") == P()
  with pytest.raises(ValueError, match="unbalanced"):
    parse_partition_spec("(data,None")
