"""The command line: `jaxgreen count`, `jaxgreen demo`, `python -m jaxgreen`."""

import json
import subprocess
import sys
import textwrap

import pytest

from jaxgreen._src.cli import main


@pytest.fixture
def model_file(tmp_path):
  path = tmp_path / "model.py"
  path.write_text(textwrap.dedent("""
      import jax, jax.numpy as jnp
      from jax.extend import core

      fake_p = core.Primitive("cli_fake_op")
      fake_p.def_abstract_eval(lambda x: x)

      def uses_fake(x):
          return fake_p.bind(x) * 2.0

      def layer(x, w):
          return jnp.maximum(x @ w, 0.0)

      def scanned(x):
          return jax.lax.scan(lambda c, _: (c @ c, None), x, None, length=10)[0]
  """))
  return path


def test_count_prints_table(model_file, capsys):
  assert main(["count", f"{model_file}:layer", "--arg", "f32[8,128]", "--arg",
               "f32[128,256]"]) == 0
  out = capsys.readouterr().out
  assert f"{8 * 256 * 128:,}" in out  # MUL of the matmul: M·N·K
  assert "dot_general" in out and "exact: yes" in out


def test_count_lists_no_zero_fpo_rows_and_fits_120_columns(tmp_path, capsys):
  path = tmp_path / "ints.py"
  path.write_text(textwrap.dedent("""
      import jax, jax.numpy as jnp

      def hist(x, i):  # integer index arithmetic, one float add under a long scope name
          j = (i * 7 + 3) % 5 - 1
          with jax.named_scope("a_rather_long_scope_name_" * 6):
              return x[j] + 1.0
  """))
  assert main(["count", f"{path}:hist", "--arg", "f32[5]", "--arg", "i32[]"]) == 0
  out = capsys.readouterr().out
  rows = [line.split() for line in out.splitlines()]
  assert ["add", "1", "1", "0", "100.0%"] in rows  # the one float ADD
  assert not any(r[-4:] == ["0", "0", "0", "0.0%"] for r in rows)  # no integer-only rows
  assert "integer-only primitives (no FPO, in 'integer ops'): " in out
  assert max(len(line) for line in out.splitlines()) <= 120  # the scope: 150 characters
  scope = next(r for r in rows if r and r[0].startswith("a_rather_long"))
  assert "..." in scope[0] and scope[1:] == ["1", "1", "0", "100.0%"]  # shortened, one row


def test_count_json(model_file, capsys):
  assert main(["count", f"{model_file}:scanned", "--arg", "f32[64,64]", "--json"]) == 0
  d = json.loads(capsys.readouterr().out)
  assert d["muls"] == 10 * 64**3  # 10 iterations of 64·64·64
  assert d["adds"] == 10 * 64 * 64 * 63  # 10 iterations of 64·64·(64-1)
  assert d["exact"] is True


@pytest.mark.parametrize("argv, message", [
    (["count", "nomodule_colon"], "MODULE:FUNCTION"),
    (["count", "MODEL:layer", "--arg", "float[3]"], "shape spec"),
    (["count", "MODEL:layer", "--arg", "f32[8,,128]"], "shape spec"),
    (["count", "MODEL:missing"], "no attribute"),
    (["count", "/nonexistent/x.py:f"], "no file"),
])
def test_count_errors_are_one_line(model_file, capsys, argv, message):
  argv = [a.replace("MODEL", str(model_file)) for a in argv]
  assert main(argv) == 2
  err = capsys.readouterr().err
  assert message in err and "Traceback" not in err


def test_strict_uncounted_is_a_one_line_error(model_file, capsys):
  assert main(["count", f"{model_file}:uses_fake", "--arg", "f32[4]", "--strict"]) == 2
  err = capsys.readouterr().err
  assert "cli_fake_op" in err and "Traceback" not in err
  assert main(["count", f"{model_file}:uses_fake", "--arg", "f32[4]", "--json"]) == 0
  d = json.loads(capsys.readouterr().out)
  assert d["uncounted"] == {"cli_fake_op": 1} and d["muls"] == 4  # the rest still counted


def test_negative_top_is_a_one_line_error(model_file, capsys):
  assert main(["count", f"{model_file}:layer", "--arg", "f32[2,3]", "--arg", "f32[3,4]",
               "--top", "-1"]) == 2
  assert "--top" in capsys.readouterr().err


def test_a_file_named_like_a_loaded_module_does_not_replace_it(tmp_path, capsys):
  # ./json.py must not become sys.modules["json"]: --json output still needs the real one
  (tmp_path / "json.py").write_text("def double(x):\n    return x * 2.0\n")
  real = sys.modules["json"]
  assert main(["count", f"{tmp_path / 'json.py'}:double", "--arg", "f32[5]", "--json"]) == 0
  assert sys.modules["json"] is real
  assert json.loads(capsys.readouterr().out)["muls"] == 5  # one MUL per element


def test_demo_runs(capsys):
  assert main(["demo", "--model", "mlp", "--batch", "4"]) == 0
  out = capsys.readouterr().out
  assert "Equation 1" in out
  # MLP 784-512-512-10 inference, per example:
  muls = 784 * 512 + 512 * 512 + 512 * 10  # three dense layers
  adds = (783 * 512 + 511 * 512 + 511 * 10  # their dot products
          + 512 + 512 + 10  # biases
          + 512 + 512  # ReLU (one compare each)
          + 9)  # argmax over 10 classes
  assert f"{muls + adds:,}" in out


def test_python_dash_m(model_file):
  r = subprocess.run([sys.executable, "-m", "jaxgreen", "count", f"{model_file}:layer",
                      "--arg", "f32[2,3]", "--arg", "f32[3,4]", "--json"],
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr
  assert json.loads(r.stdout)["muls"] == 2 * 4 * 3  # M·N·K


def test_count_by_source_pprof_and_html(model_file, tmp_path, capsys):
  prof, page = tmp_path / "fpo.pb.gz", tmp_path / "fpo.html"
  assert main(["count", f"{model_file}:layer", "--arg", "f32[8,128]", "--arg", "f32[128,256]",
               "--by", "source", "--pprof", str(prof), "--html", str(page)]) == 0
  out, err = capsys.readouterr()
  # the matmul and the relu are one line: M·N·(K MUL + K-1 ADD) + M·N max
  assert "model.py:12:layer" in out and f"{8 * 256 * (2 * 128 - 1) + 8 * 256:,}" in out
  assert "source line" in out and "dot_general" not in out
  assert prof.read_bytes()[:2] == b"\x1f\x8b" and f"wrote {prof}" in err
  assert f'id="total-fpo" data-v="{8 * 256 * (2 * 128 - 1) + 8 * 256}"' in page.read_text()
