"""The compiled-HLO walker: closed-form convolution counts and malformed text."""

from __future__ import annotations

import random
import time

import jax
import jax.numpy as jnp
import pytest

import jaxgreen
from jaxgreen._src.hlo.compiled import count_hlo_text
from jaxgreen._src.hlo.parse import HloParseError, parse_module


def test_a_long_1d_conv_is_counted_in_closed_form_at_the_compiled_stage():
  length, taps = 32_768, 2_048  # per tap and output this would be 67 M window positions

  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1,), "SAME")

  x = jax.ShapeDtypeStruct((1, 1, length), jnp.float32)
  w = jax.ShapeDtypeStruct((1, 1, taps), jnp.float32)
  text = jax.jit(conv).lower(x, w).compile().as_text()
  t0 = time.perf_counter()
  cost = count_hlo_text(text).cost
  elapsed = time.perf_counter() - t0
  assert elapsed < 1.0  # a per-tap count took 14.5 s
  assert cost.fpo == jaxgreen.count(conv)(x, w).fpo  # the same conventions as the jaxpr
  assert cost.exact


def _program_text() -> str:
  def f(x, w):
    h = jnp.tanh(x @ w)
    h, _ = jax.lax.scan(lambda c, _: (c * 2.0 + 1.0, None), h, None, length=3)
    return jax.lax.reduce_window(h, 0.0, jax.lax.add, (1, 3), (1, 1), "SAME").sum()

  x = jax.ShapeDtypeStruct((4, 64), jnp.float32)
  w = jax.ShapeDtypeStruct((64, 64), jnp.float32)
  return jax.jit(f).lower(x, w).compile().as_text()


def test_truncated_hlo_is_an_error_never_a_smaller_exact_count():
  text = _program_text()
  full = count_hlo_text(text).cost
  assert full.exact and full.fpo > 64 * 64 * 4
  lines = text.splitlines()
  entry = next(i for i, line in enumerate(lines) if line.startswith("ENTRY"))
  with pytest.raises(HloParseError, match="ends inside computation.*truncated"):
    count_hlo_text("\n".join(lines[:entry + 3]))  # cut inside the entry computation
  with pytest.raises(HloParseError, match="no ENTRY computation"):
    count_hlo_text("\n".join(lines[:entry]))  # cut just before it: only helpers are left


def test_cyclic_or_dangling_calls_are_errors():
  cyclic = """HloModule m
%body (p: f32[4]) -> f32[4] {
  %p = f32[4] parameter(0)
  ROOT %c = f32[4] call(%p), to_apply=%body
}
ENTRY %main (x: f32[4]) -> f32[4] {
  %x = f32[4] parameter(0)
  ROOT %r = f32[4] call(%x), to_apply=%body
}
"""
  with pytest.raises(HloParseError, match="'body' calls itself"):
    parse_module(cyclic)
  with pytest.raises(HloParseError, match="calls 'gone'"):
    parse_module(cyclic.replace("to_apply=%body\n}\nENTRY", "to_apply=%gone\n}\nENTRY"))
  with pytest.raises(HloParseError, match="negative dimension"):
    parse_module(cyclic.replace("ROOT %r = f32[4]", "ROOT %r = f32[-4]"))


def test_mutated_hlo_is_parsed_or_refused_with_a_jaxgreen_error():
  text = _program_text()
  rng = random.Random(12)  # deterministic mutants: deletions, insertions, cuts, copies
  chars = '{}()[],=%" \n0123456789abfxz-<>:.'
  refused = 0
  for _ in range(400):
    t = text
    for _ in range(rng.randint(1, 3)):
      p, op = rng.randrange(len(t)), rng.random()
      if op < 0.3:
        t = t[:p] + t[p + rng.randint(1, 20):]
      elif op < 0.6:
        t = t[:p] + rng.choice(chars) * rng.randint(1, 3) + t[p:]
      elif op < 0.8:
        t = t[:p]
      else:
        q = rng.randrange(len(t))
        t = t[:p] + t[q:q + rng.randint(1, 40)] + t[p:]
    t0 = time.perf_counter()
    try:
      count_hlo_text(t)  # parse and walk: a mutant is counted or refused, never raw
    except HloParseError:
      refused += 1
    assert time.perf_counter() - t0 < 2.0  # never a hang
  assert refused > 100  # most mutants are malformed, and each was refused cleanly
