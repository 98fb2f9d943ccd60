"""cuDNN fused attention custom calls (``__cudnn$fmha*``) priced from their shapes.

``jax.nn.dot_product_attention(..., implementation="cudnn")`` compiles for a GPU to one
custom call per direction. Its ``backend_config`` gives the score tensor's shape
(``intermediate_tensor_shape``: batch, heads, queries T, keys S), the scale and the
mask; the query and output operands give the head dimensions. jaxgreen prices the call
as the program it fuses, with the jaxpr counter's conventions (a dot is B*M*N*K MUL and
B*M*N*(K-1) ADD; a reduction of n elements n - 1; exp and div at the CostModel's price)
over every score, masked or not, as the XLA implementation of the same attention runs:

forward, per score: QK^T and PV dots; a scale (when not 1); the bias (``ScaleBias``
kinds); the softmax: a max over each row (S compares from -inf, as ``jax.nn.softmax``)
and a sum (S - 1 adds), a subtraction, an exp and a division per score. This is what
jaxgreen counts for the jaxpr of ``jax.nn.dot_product_attention(...,
implementation="xla")``, operation for operation.

backward (the flash-attention backward cuDNN runs), per score: the QK^T dot recomputed,
its scale, the subtraction and exp that rebuild P; the dV = P^T dO, dP = dO V^T,
dQ = dS K and dK = dS^T Q dots; dS = P (dP - D) (a subtraction and a multiplication,
and the scale); and D = rowsum(dO * O) per query.

XLA prices the call at -1 ("unknown"); dropout's random bits are not counted.

Example:
  >>> from jaxgreen._src.cost_model import DEFAULT
  >>> fwd = attention_counts(DEFAULT, (1, 1, 4, 4), 8, 8, scale=1.0, bias=False,
  ...                        backward=False)
  >>> fwd[:2]  # ADD: 16*7 + 4*4 + 16 + 7*16 + 4*3 + 32*3; MUL: 16*8 + 7*16 + 16 + 32*4
  (364, 384)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from jaxgreen._src.cost_model import CostModel

FMHA_PREFIX = "__cudnn$fmha"


def _dot(outputs: int, k: int) -> tuple[int, int]:
  """(ADD, MUL) of ``outputs`` dot products of length ``k``."""
  return outputs * max(k - 1, 0), outputs * k


def _priced(model: CostModel, name: str, n: int) -> tuple[int, int]:
  a, m = model.price(name) or (0, 0)
  return a * n, m * n


def attention_counts(model: CostModel, scores: Sequence[int], d_qk: int, d_v: int, *,
                     scale: float, bias: bool,
                     backward: bool) -> tuple[int, int, int]:
  """(ADD, MUL, transcendentals) of one fused attention call (see the module docstring).

  Args:
    scores: (batch, heads, T, S), the score tensor's shape.
    d_qk: the head dimension of queries and keys; ``d_v``: of values.
    scale: ``fmha_scale`` (1: no scaling); bias: a bias is added to the scores.
    backward: the gradient kernel instead of the forward one.
  """
  b, h, t, s = (list(scores) + [1, 1, 1, 1])[:4]
  n = math.prod(scores)
  rows = b * h * t
  parts: list[tuple[int, int]] = [_dot(n, d_qk)]  # QK^T
  scaled = scale not in (1, 1.0)
  if scaled:
    parts.append((0, n))
  if not backward:
    parts += [(n, 0)] if bias else []
    parts += [_priced(model, "max", rows * s),  # row max, from -inf as jax's softmax
              (n, 0),  # scores - max
              _priced(model, "exp", n),
              (rows * max(s - 1, 0), 0),  # row sum
              _priced(model, "div", n),
              _dot(rows * d_v, s)]  # PV
  else:
    parts += [(n, 0), _priced(model, "exp", n),  # P = exp(S - logsumexp)
              _dot(b * h * s * d_v, t),  # dV = P^T dO
              _dot(n, d_v),  # dP = dO V^T
              _dot(rows, d_v),  # D = rowsum(dO * O): d_v MULs, d_v - 1 ADDs per query
              (n, n),  # dS = P * (dP - D)
              _dot(rows * d_qk, s),  # dQ = dS K
              _dot(b * h * s * d_qk, t)]  # dK = dS^T Q
    if scaled:
      parts.append((0, n))
  adds = sum(p[0] for p in parts)
  muls = sum(p[1] for p in parts)
  return adds, muls, n  # one exp per score
