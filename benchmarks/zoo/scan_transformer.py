"""A scan-over-layers transformer with rematerialisation: GPT-2 under nn.scan + nn.remat.

The blocks are one ``Block`` under ``nn.scan`` (parameters stacked on a leading layer
axis, compiled once) wrapped in ``nn.remat`` (activations recomputed in the backward
pass), the layout large-model codebases use to keep compile time and memory flat in
depth. Same parameters and forward FPO as the unrolled GPT-2 of the same config; the
train step does one extra forward of each block.
"""

from __future__ import annotations

from . import gpt2
from .gpt2 import GPT2Config


def config(**kw) -> GPT2Config:
  """GPT-2 small's shape with ``scan_layers=True, remat=True`` (override any field)."""
  return gpt2.small(**{"scan_layers": True, "remat": True} | kw)


def model_and_input(cfg: GPT2Config | None = None, batch_size: int = 1):
  return gpt2.model_and_input(cfg or config(), batch_size)


def make_train_step(cfg: GPT2Config | None = None, batch_size: int = 8, **kw):
  """``(train_step, (params, opt_state, tokens))``, all abstract (see gpt2)."""
  return gpt2.make_train_step(cfg or config(), batch_size, **kw)
