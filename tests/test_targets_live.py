"""Targets in a live session: unavailable targets, a quiet terminal, the compile cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import jaxgreen
from jaxgreen.targets import TargetError

X = jax.ShapeDtypeStruct((8, 16), jnp.float32)


def _f(a):
  return jnp.tanh(a).sum()


def test_compare_keeps_the_targets_that_compile():
  c = jaxgreen.compare(_f, ["tpu:v5e:3x3", "cpu"])(X)
  assert [r.target for r in c] == ["cpu"]
  assert "tpu:v5e:3x3" in c.unavailable
  assert c["cpu"].pod.per_device.fpo > 0
  table = c.table()
  assert table.splitlines()[0].split()[-2:] == ["cpu", "tpu:v5e:3x3"]
  assert "tpu:v5e:3x3: unavailable: " in table
  d = json.loads(c.to_json())
  assert set(d["unavailable"]) == {"tpu:v5e:3x3"}
  with pytest.raises(KeyError, match="unavailable"):
    c["tpu:v5e:3x3"]


def test_reconcile_keeps_the_targets_that_compile():
  r = jaxgreen.reconcile(_f, targets=["cpu", "tpu:v5e:3x3"])(X)
  assert [t.target for t in r] == ["cpu"]
  assert r["cpu"].residual == 0
  assert "tpu:v5e:3x3: unavailable: target 'tpu:v5e:3x3'" in r.table()
  assert r.to_dict()["unavailable"]["tpu:v5e:3x3"]


def test_all_targets_unavailable_is_an_error():
  with pytest.raises(TargetError, match="no target could be compiled.*tpu:v5e:3x3"):
    jaxgreen.compare(_f, ["tpu:v5e:3x3"])(X)
  with pytest.raises(TargetError, match="no target could be compiled"):
    jaxgreen.reconcile(_f, targets=["tpu:v5e:3x3"])(X)


def test_cli_exits_non_zero_only_when_every_target_fails(tmp_path, capsys):
  from jaxgreen.cli import main

  mod = tmp_path / "m.py"
  mod.write_text("import jax.numpy as jnp\n\ndef f(a):\n  return jnp.tanh(a).sum()\n")
  assert main(["compare", f"{mod}:f", "--arg", "f32[8,16]", "--target", "cpu",
               "--target", "tpu:v5e:3x3"]) == 0
  out = capsys.readouterr().out
  assert "tpu:v5e:3x3: unavailable:" in out
  assert main(["compare", f"{mod}:f", "--arg", "f32[8,16]", "--target", "cpu",
               "--target", "tpu:v5e:3x3", "--report"]) == 0
  assert main(["compare", f"{mod}:f", "--arg", "f32[8,16]", "--target", "tpu:v5e:3x3"]) == 2


def test_device_counts_agree_between_reconcile_and_report(tmp_path, capsys):
  pytest.importorskip("libtpu", reason="TPU targets need the tpu extra")
  from jaxgreen.cli import main

  mod = tmp_path / "m.py"
  mod.write_text("import jax.numpy as jnp\n\ndef f(a):\n  return jnp.tanh(a).sum()\n")
  assert main(["compare", f"{mod}:f", "--arg", "f32[8,16]", "--target", "tpu:v5e:2x2"]) == 0
  rec = capsys.readouterr().out
  assert main(["compare", f"{mod}:f", "--arg", "f32[8,16]", "--target", "tpu:v5e:2x2",
               "--report"]) == 0
  rep = capsys.readouterr().out
  line = next(ln for ln in rec.splitlines() if ln.startswith("devices"))
  assert line.split()[-1] == "4"  # program devices / target devices: 1 / 4
  line = next(ln for ln in rep.splitlines() if ln.startswith("devices"))
  assert line.split()[2] == "4"


def test_importing_jaxgreen_keeps_plugin_noise_off_stderr():
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  code = ("import jaxgreen, jax, jax.numpy as jnp\n"
          "print(float(jnp.ones(3).sum()), jax.default_backend())\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split() == ["3.0", "cpu"]
  assert out.stderr == ""


@pytest.mark.parametrize("spec, lib", [("tpu:v5e:2x2", "libtpu"),
                                       ("gpu:h100", "jax_cuda12_plugin")])
def test_second_compilation_comes_from_the_cache(spec, lib, tmp_path, monkeypatch):
  pytest.importorskip(lib, reason=f"{spec} needs its extra")
  from jaxgreen import targets

  monkeypatch.setenv("JAXGREEN_CACHE_DIR", str(tmp_path))

  def g(a, b):
    return jax.lax.fori_loop(0, 3, lambda i, c: jnp.tanh(c @ b), a).sum()

  x, y = jax.ShapeDtypeStruct((8, 16), jnp.float32), jax.ShapeDtypeStruct((16, 16),
                                                                           jnp.float32)
  r1 = jaxgreen.reconcile(g, targets=[spec])(x, y)[spec]
  assert len(list(tmp_path.rglob("*.json.gz"))) == 1
  _, c = targets.get_target(spec).compile(g, x, y)
  assert isinstance(c, targets.CachedExecutable)
  r2 = jaxgreen.reconcile(g, targets=[spec])(x, y)[spec]
  assert r2.to_dict() | {"compile_seconds": 0, "walk_seconds": 0} == \
      r1.to_dict() | {"compile_seconds": 0, "walk_seconds": 0}
  assert r2.xla.flops and r2.xla.source == r1.xla.source
  monkeypatch.setenv("JAXGREEN_CACHE", "0")
  _, c = targets.get_target(spec).compile(g, x, y)
  assert not isinstance(c, targets.CachedExecutable)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
  from jaxgreen.targets import cache_dir

  monkeypatch.delenv("JAXGREEN_CACHE_DIR", raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert cache_dir() == str(tmp_path / "jaxgreen" / "compiled")
  monkeypatch.setenv("JAXGREEN_CACHE_DIR", str(tmp_path / "x"))
  assert cache_dir() == str(tmp_path / "x")
  monkeypatch.setenv("JAXGREEN_CACHE_DIR", "")
  assert cache_dir() is None


def test_progress_is_a_status_line_on_a_terminal_and_quiet_otherwise():
  import io

  from jaxgreen.targets import progress_line

  class Tty(io.StringIO):
    def isatty(self):
      return True

  for stream, tty in ((Tty(), True), (io.StringIO(), False)):
    report, done = progress_line(stream)
    report("cpu", 0, 2)
    report("tpu:v5e:2x2", 1, 2)
    done()
    text = stream.getvalue()
    if tty:
      assert "compiling for cpu (1/2," in text
      assert "compiling for tpu:v5e:2x2 (2/2," in text and " - cpu " in text
      assert "\r\033[K" in text
      assert text.endswith("\r\033[K")  # the line is cleared at the end
    else:
      assert text == ""


def test_progress_argument_of_compare_and_reconcile(capsys):
  calls = []
  jaxgreen.compare(_f, ["cpu", "tpu:v5e:3x3"], progress=lambda *a: calls.append(a))(X)
  jaxgreen.reconcile(_f, targets=["cpu"], progress=False)(X)
  jaxgreen.reconcile(_f, targets=["cpu"])(X)  # default: a status line only on a terminal
  assert calls == [("cpu", 0, 2), ("tpu:v5e:3x3", 1, 2)]
  assert capsys.readouterr().err == ""
  with pytest.raises(TypeError, match="progress=3 must be"):
    jaxgreen.reconcile(_f, targets=["cpu"], progress=3)(X)


def test_plugin_log_is_dropped_only_without_the_hardware(monkeypatch):
  import logging

  from jaxgreen import targets

  rec = logging.LogRecord("jax._src.xla_bridge", logging.ERROR, __file__, 1,
                          "Jax plugin configuration error: Exception when calling %s",
                          ("jax_plugins.xla_cuda12.initialize()",), None)
  other = logging.LogRecord("jax._src.xla_bridge", logging.WARNING, __file__, 1,
                            "something else", (), None)
  monkeypatch.setattr(targets, "_hardware_present", lambda platform: False)
  assert not targets._filter.filter(rec)
  assert targets._filter.filter(other)
  monkeypatch.setattr(targets, "_hardware_present", lambda platform: True)
  assert targets._filter.filter(rec)  # with a driver, a failing plugin is news
