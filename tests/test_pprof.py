"""The pprof export: read back by a small wire-format reader and by Go's own pprof."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess

import jax
import jax.numpy as jnp
import pytest

import jaxgreen
from jaxgreen._src import _pprof
from jaxgreen._src.cost import Cost

B, K, H = 32, 64, 256


def mlp(w1, w2, x):
  h = jnp.tanh(x @ w1)
  return jnp.sum(h @ w2)


def loss_grad(w1, w2, x):
  return jax.grad(mlp)(w1, w2, x)


def _cost():
  return jaxgreen.count(jax.jit(loss_grad))(jnp.ones((K, H)), jnp.ones((H, 10)),
                                            jnp.ones((B, K)))


# -- a protobuf wire-format reader (varints and length-delimited fields only) ---------

def _varint(b: bytes, i: int) -> tuple[int, int]:
  n = shift = 0
  while True:
    byte = b[i]
    i += 1
    n |= (byte & 0x7F) << shift
    shift += 7
    if not byte & 0x80:
      return n, i


def _fields(b: bytes) -> list[tuple[int, int | bytes]]:
  out, i = [], 0
  while i < len(b):
    key, i = _varint(b, i)
    field, wire = key >> 3, key & 7
    if wire == 0:
      v, i = _varint(b, i)
      out.append((field, v))
    else:
      assert wire == 2, f"unexpected wire type {wire}"
      n, i = _varint(b, i)
      out.append((field, b[i:i + n]))
      i += n
  return out


def _unpack(b: bytes) -> list[int]:
  out, i = [], 0
  while i < len(b):
    v, i = _varint(b, i)
    out.append(v)
  return out


def _read(data: bytes) -> dict:
  fields = _fields(gzip.decompress(data))
  strings = [v.decode() for f, v in fields if f == 6]
  types = [[strings[x] for _, x in _fields(v)] for f, v in fields if f == 1]
  samples = []
  for f, v in fields:
    if f == 2:
      s = _fields(v)
      labels = {}
      for g, lab in s:
        if g == 3:
          kv = dict(_fields(lab))
          labels[strings[kv[1]]] = strings[kv[2]]
      samples.append(([x for g, p in s if g == 1 for x in _unpack(p)],
                      [x for g, p in s if g == 2 for x in _unpack(p)], labels))
  functions = {}
  for f, v in fields:
    if f == 5:
      d = dict(_fields(v))
      functions[d[1]] = (strings[d[2]], strings[d.get(4, 0)])
  locations = {}
  for f, v in fields:
    if f == 4:
      d = _fields(v)
      lid = dict(d)[1]
      line = dict(_fields(dict(d)[4]))
      locations[lid] = (*functions[line[1]], line.get(2, 0))
  default = next((v for f, v in fields if f == 14), 0)
  return {"strings": strings, "types": types, "samples": samples, "locations": locations,
          "default": default}


def test_varint():
  assert _pprof.varint(0) == b"\x00" and _pprof.varint(300) == b"\xac\x02"  # protobuf docs
  assert _varint(_pprof.varint(2**62 + 5), 0) == (2**62 + 5, 9)
  with pytest.raises(ValueError, match=">= 0"):
    _pprof.varint(-1)


def test_profile_holds_every_site_and_the_totals(tmp_path):
  c = _cost()
  path = tmp_path / "fpo.pb.gz"
  data = c.to_pprof(str(path))
  assert path.read_bytes() == data and data[:2] == b"\x1f\x8b"  # gzip
  p = _read(data)
  assert p["strings"][0] == ""
  # FPO last: the default of Go's pprof (default_sample_type) and of speedscope (the last)
  assert p["types"] == [["adds", "count"], ["muls", "count"], ["transcendentals", "count"],
                        ["bytes", "bytes"], ["fpo", "count"]]
  assert p["strings"][p["default"]] == "fpo" and p["default"] > len(p["types"]) - 1
  totals = [sum(s[1][i] for s in p["samples"]) for i in range(5)]
  assert totals == [c.adds, c.muls, c.transcendentals, c.bytes, c.fpo]
  dots = [s for s in p["samples"] if s[2]["primitive"] == "dot_general"]
  assert {s[2]["scope"] for s in dots} <= {"<top level>"} and dots
  # locations: leaf first, the user's function and line
  leaf = p["locations"][dots[0][0][0]]
  assert leaf[0] == "mlp" and leaf[1] == os.path.abspath(__file__)
  outer = p["locations"][dots[0][0][-1]]
  assert outer[0] == "loss_grad"


def test_a_cost_without_sites_is_refused():
  with pytest.raises(ValueError, match="stage='jaxpr'"):
    Cost(adds=3).to_pprof()
  assert _read(Cost().to_pprof())["samples"] == []


def _go_pprof(*args: str) -> str:
  env = dict(os.environ, HOME=os.environ.get("HOME", "/tmp"), GOFLAGS="-mod=mod")
  r = subprocess.run(["go", "tool", "pprof", *args], capture_output=True, text=True,
                     timeout=180, env=env)
  assert r.returncode == 0, r.stderr
  return r.stdout


@pytest.mark.skipif(shutil.which("go") is None,
                    reason="Go is not installed (apt-get install golang-go); CI installs it")
def test_go_tool_pprof_reads_it(tmp_path):
  c = _cost()
  path = str(tmp_path / "fpo.pb.gz")
  c.to_pprof(path)
  top = _go_pprof("-top", path)
  assert f"Showing nodes accounting for {c.fpo}, 100% of {c.fpo} total" in top
  rows = [line.split() for line in top.splitlines() if re.match(r"\s+\d", line)]
  assert rows[0][0] == str(c.fpo) and rows[0][-1] == "mlp"  # flat: all work is in mlp
  assert any(r[-1] == "loss_grad" for r in rows)
  lines = _go_pprof("-top", "-lines", path)
  first = [ln.split() for ln in lines.splitlines() if re.match(r"\s+\d", ln)][0]
  fwd = c.by_source[next(iter(c.by_source))]
  assert first[-1] == f"{os.path.abspath(__file__)}:{mlp.__code__.co_firstlineno + 1}"
  assert int(first[0]) == fwd.fpo  # the matmul line, forward and backward
  muls = _go_pprof("-top", "-sample_index=muls", path)
  assert f"of {c.muls} total" in muls
  tags = _go_pprof("-tags", path)
  assert "dot_general" in tags and "scope" in tags
