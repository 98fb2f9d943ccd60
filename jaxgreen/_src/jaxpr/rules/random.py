"""Random bit generation: integer work, kept out of FPO.

Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2,
3", SC 2011): each round is an add, a rotate (two shifts and an or) and a xor on a pair
of 32-bit words (5 integer ops), and the key is injected every 4 rounds (5 injections
of 3 adds): 20*5 + 5*3 = 115 integer ops per pair of output words. Threefry-4x32 (same
paper): 20 rounds of two add/rotate/xor mixes on 4 words (10 ops) and 5 key injections
of 5 adds: 20*10 + 5*5 = 225 per block of 4 words. Philox-4x32 with 10 rounds: two
32x32->64 multiplies (hi and lo: 4 ops), 4 xors and a 2-add key bump per round:
10*10 = 100 per block of 4 words; Philox-2x32: one multiply (2), 2 xors and a 1-add
bump: 10*5 = 50 per block of 2 words.

``rng_bit_generator`` is XLA's generator: Philox-4x32 for the default algorithm (as
XLA expands it), Threefry-2x32 when asked for. ``random_bits``, ``random_split`` and
``random_fold_in`` are counted from the program jax itself lowers them to (the key
implementation's ``random_bits``/``split``/``fold_in``: Threefry blocks, counters,
xors), so the lowered program counts the same. ``random_gamma`` is counted from jax's
own sampler program (Marsaglia-Tsang rejection sampling): its loop runs a
data-dependent number of times, so it is counted once per element and the result is
marked inexact; ``random_poisson`` (jax >= 0.12.1) likewise from jax's sampler, and
``raw_bits`` (jax >= 0.12.1) from the key implementation's program. ``rng_uniform``
(XLA's RngUniform) is one block of bits per element plus, for floats, a scale and a
shift (1 ADD, 1 MUL). The block prices live in :mod:`jaxgreen._src.formulas`, shared with
the HLO walker.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
from jax.extend.core import primitives as P

from jaxgreen._src._compat import gamma_impl, key_impl, physical_aval, poisson_impl
from jaxgreen._src._compat import prng as _prng
from jaxgreen._src.formulas import (
  PHILOX2_OPS_PER_BLOCK,
  PHILOX4_OPS_PER_BLOCK,
  THREEFRY4_OPS_PER_BLOCK,
  rng_bit_generator_ops,
  rng_uniform_ops,
  threefry_ops,
)
from jaxgreen._src.jaxpr.interpreter import RuleContext, dtype_info
from jaxgreen._src.jaxpr.registry import register
from jaxgreen._src.jaxpr.rules._util import ops, size


def _words(aval) -> int:
  itemsize = getattr(aval.dtype, "itemsize", 4) or 4
  return -(-size(aval) * itemsize // 4)


@register(P.threefry2x32_p)
def _threefry(ctx: RuleContext, k1, k2, x1, x2, **_):
  return ops(int_ops=threefry_ops(size(ctx.outs[0])))


@functools.lru_cache(maxsize=128)
def _key_program(kind: str, keys_aval, extra, partitionable: bool):
  """The jaxpr jax lowers a key operation to (``random_bits_lowering`` & co.)."""
  del partitionable  # part of the cache key only: it changes the program traced
  impl = key_impl(keys_aval)
  phys = physical_aval(keys_aval)
  base = jax.ShapeDtypeStruct(phys.shape, phys.dtype)
  if kind == "bits":
    bit_width, shape = extra
    return jax.make_jaxpr(lambda b: _prng.random_bits_impl_base(
        impl, b, keys_aval.ndim, bit_width=bit_width, shape=shape))(base)
  if kind == "raw":  # jax >= 0.12.1: the key implementation's raw words
    raw: Any = getattr(_prng, "raw_bits_impl_base", None)  # jax >= 0.12.1
    return jax.make_jaxpr(lambda b: raw(impl, b, keys_aval.ndim, shape=extra))(base)
  if kind == "split":
    return jax.make_jaxpr(lambda b: _prng.random_split_impl_base(
        impl, b, keys_aval.ndim, shape=extra))(base)
  msgs_shape, msgs_dtype = extra
  return jax.make_jaxpr(lambda b, m: _prng.random_fold_in_impl_base(
      impl, b, m, keys_aval.shape))(base, jax.ShapeDtypeStruct(msgs_shape, msgs_dtype))


def _walk_key_program(ctx: RuleContext, kind: str, keys, extra):
  """Counts jax's own program for a key operation; None when it cannot be traced."""
  if _prng is None:
    return None
  try:
    # jax's Config declares its flags dynamically (jax 0.10's stubs do not list them).
    partitionable = bool(getattr(jax.config, "jax_threefry_partitionable"))  # noqa: B009
    program = _key_program(kind, keys, extra, partitionable)
  except Exception:  # noqa: BLE001 - an unknown key layout: the block formula is used
    return None
  return ctx.walk(program)


@register(P.random_bits_p)
def _random_bits(ctx: RuleContext, keys, *, bit_width, shape, **_):
  walked = _walk_key_program(ctx, "bits", keys, (int(bit_width), tuple(shape)))
  if walked is not None:
    return walked
  return ops(int_ops=threefry_ops(-(-_words(ctx.outs[0]) // 2)))


@register("raw_bits")
def _raw_bits(ctx: RuleContext, keys, *, shape, **_):
  walked = _walk_key_program(ctx, "raw", keys, tuple(shape))
  if walked is not None:
    return walked
  return ops(int_ops=threefry_ops(-(-sum(_words(o) for o in ctx.outs) // 2)))


@register(P.random_split_p)
def _random_split(ctx: RuleContext, keys, *, shape, **_):
  walked = _walk_key_program(ctx, "split", keys, tuple(shape))
  if walked is not None:
    return walked
  return ops(int_ops=threefry_ops(size(ctx.outs[0])))  # one block per new 2-word key


@register(P.random_fold_in_p)
def _random_fold_in(ctx: RuleContext, keys, msgs, **_):
  walked = _walk_key_program(ctx, "fold_in", keys, (tuple(msgs.shape), msgs.dtype))
  if walked is not None:
    return walked
  return ops(int_ops=threefry_ops(size(ctx.outs[0])))


@register(P.rng_bit_generator_p)
def _rng_bit_generator(ctx: RuleContext, key, *, algorithm=None, **_):
  out = ctx.outs[1]
  name = getattr(algorithm, "name", str(algorithm))
  return ops(int_ops=rng_bit_generator_ops(name, size(out) * (out.dtype.itemsize or 4)))


@register("iota_2x32_shape")
def _iota_2x32(ctx: RuleContext, **_):
  return ops(int_ops=2 * size(ctx.outs[0]))  # one multiply-add of the strides per word


def _per_block(ops_per_block: int):
  def rule(ctx: RuleContext, *args, **_):
    return ops(int_ops=ops_per_block * size(ctx.outs[0]))

  return rule


register("threefry4x32")(_per_block(THREEFRY4_OPS_PER_BLOCK))
register("philox4x32")(_per_block(PHILOX4_OPS_PER_BLOCK))
register("philox2x32")(_per_block(PHILOX2_OPS_PER_BLOCK))


@register("rng_uniform")
def _rng_uniform(ctx: RuleContext, a, b, **_):
  out = ctx.outs[0]
  n = size(out)
  bits = ops(int_ops=rng_uniform_ops(size(out) * (getattr(out.dtype, "itemsize", 4) or 4)))
  if dtype_info(out.dtype)[0]:  # floats, bfloat16 and float8 included
    return bits + ops(adds=n, muls=n)
  return bits


@functools.lru_cache(maxsize=64)
def _gamma_program(key_shape, key_dtype, a_shape, a_dtype, log_space):
  impl = functools.partial(gamma_impl, log_space=log_space, use_vmap=True)
  return jax.make_jaxpr(impl)(jax.ShapeDtypeStruct(key_shape, key_dtype),
                              jax.ShapeDtypeStruct(a_shape, a_dtype))


def _random_gamma(ctx: RuleContext, key, a, *, log_space, **_):
  program = _gamma_program(tuple(key.shape), key.dtype, tuple(a.shape), a.dtype,
                           bool(log_space))
  return ctx.walk(program)


if gamma_impl is not None:
  register("random_gamma")(_random_gamma)


@functools.lru_cache(maxsize=64)
def _poisson_program(key_shape, key_dtype, lam_shape, lam_dtype, dtype):
  impl = functools.partial(poisson_impl, dtype=dtype)
  return jax.make_jaxpr(impl)(jax.ShapeDtypeStruct(key_shape, key_dtype),
                              jax.ShapeDtypeStruct(lam_shape, lam_dtype))


def _random_poisson(ctx: RuleContext, key, lam, *, dtype, **_):
  program = _poisson_program(tuple(key.shape), key.dtype, tuple(lam.shape), lam.dtype, dtype)
  return ctx.walk(program)


if poisson_impl is not None:
  register("random_poisson")(_random_poisson)
