"""Targets in a live session: a target that cannot compile spares the others."""

from __future__ import annotations

import json

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
  from jaxgreen._src.cli import main

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
  from jaxgreen._src.cli import main

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
