"""Random bit generation: integer work, kept out of FPO.

Threefry-2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2,
3", SC 2011): each round is an add, a rotate (two shifts and an or) and a xor on a pair
of 32-bit words (5 integer ops), and the key is injected every 4 rounds (5 injections
of 3 adds): 20*5 + 5*3 = 115 integer ops per pair of output words. Philox-4x32 with
10 rounds: 2 multiplies (hi and lo), 2 xors and a key bump per round on 4 words:
about 10*8 = 80 integer ops per 4 words.
"""

from __future__ import annotations

from jax.extend.core import primitives as P

from jaxgreen.jaxpr.registry import register
from jaxgreen.jaxpr.rules._util import ops, size

THREEFRY_OPS_PER_PAIR = 20 * 5 + 5 * 3


def _words(aval) -> int:
  itemsize = getattr(aval.dtype, "itemsize", 4) or 4
  return -(-size(aval) * itemsize // 4)


@register(P.threefry2x32_p)
def _threefry(ctx, k1, k2, x1, x2, **_):
  return ops(int_ops=THREEFRY_OPS_PER_PAIR * size(ctx.outs[0]))


@register(P.random_bits_p)
def _random_bits(ctx, keys, **_):
  pairs = -(-_words(ctx.outs[0]) // 2)
  return ops(int_ops=THREEFRY_OPS_PER_PAIR * pairs)


@register(P.random_split_p, P.random_fold_in_p)
def _random_keys(ctx, keys, *args, **_):
  # Each new 2-word key is one Threefry block.
  return ops(int_ops=THREEFRY_OPS_PER_PAIR * max(1, size(ctx.outs[0])))


@register(P.rng_bit_generator_p)
def _rng_bit_generator(ctx, key, **_):
  pairs = -(-_words(ctx.outs[1]) // 2)
  return ops(int_ops=THREEFRY_OPS_PER_PAIR * pairs)


@register("iota_2x32_shape")
def _iota_2x32(ctx, **_):
  return ops(int_ops=2 * size(ctx.outs[0]))  # one multiply-add of the strides per word
