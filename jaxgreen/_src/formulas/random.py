"""Random bits: integer work only, by block formulas of the generators."""

from __future__ import annotations

# Threefry-2x32, 20 rounds (Salmon et al., SC 2011): each round an add, a rotate (two
# shifts and an or) and a xor on a pair of 32-bit words (5 ops); a key injection of 3
# adds every 4 rounds (5 injections). Threefry-4x32: 20 rounds of two mixes on 4 words
# (10 ops) + 5 injections of 5 adds. Philox-4x32, 10 rounds: two 32x32->64 multiplies
# (hi and lo: 4 ops), 4 xors and a 2-add key bump per round; Philox-2x32: one multiply
# (2), 2 xors and a 1-add bump.
THREEFRY_OPS_PER_PAIR = 20 * 5 + 5 * 3
THREEFRY4_OPS_PER_BLOCK = 20 * 10 + 5 * 5
PHILOX4_OPS_PER_BLOCK = 10 * 10
PHILOX2_OPS_PER_BLOCK = 10 * 5


def threefry_ops(pairs: int) -> int:
  """Integer ops of ``pairs`` Threefry-2x32 blocks (two 32-bit words each)."""
  return THREEFRY_OPS_PER_PAIR * max(0, int(pairs))


def rng_bit_generator_ops(algorithm: str, out_bytes: int) -> int:
  """Integer ops of ``rng_bit_generator`` producing ``out_bytes`` bytes of bits.

  ``algorithm`` is jax's ``RNG_DEFAULT``/``RNG_THREE_FRY``/``RNG_PHILOX`` or HLO's
  ``rng_default``/``rng_three_fry``/``rng_philox`` (any case): Philox-4x32 (XLA's
  default on every backend) is one block per four 32-bit words, Threefry-2x32 one
  block per pair of words.
  """
  words = -(-max(0, int(out_bytes)) // 4)
  if "three" in algorithm.lower():
    return threefry_ops(-(-words // 2))
  return PHILOX4_OPS_PER_BLOCK * -(-words // 4)


def rng_uniform_ops(out_bytes: int) -> int:
  """Integer ops of XLA's RngUniform (jax's ``rng_uniform``) filling ``out_bytes``
  bytes: one Threefry-2x32 block per pair of 32-bit words (float outputs add a scale
  and a shift per element, 1 ADD + 1 MUL, counted by the caller)."""
  words = -(-max(0, int(out_bytes)) // 4)
  return threefry_ops(-(-words // 2))

