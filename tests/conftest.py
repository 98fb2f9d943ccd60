"""Test configuration: the CPU platform only.

GPU targets compile deviceless and need jax's platform to be "cpu" before any backend
starts. pytest imports jaxgreen (hence jax) to resolve the warning filters in
pyproject.toml before this file runs, so the environment variable alone can come too
late: the config is also set here, at collection, before any test starts a backend.
"""

import os
import sys

# The tests count the bundled benchmark and example programs (`benchmarks.zoo`,
# `examples`): the repository root is importable, but after site-packages, so `jaxgreen`
# itself is the installed package under test, not the source tree.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# jaxgreen's compilation cache: never the user's own cache folder.
import tempfile  # noqa: E402

os.environ.setdefault("JAXGREEN_CACHE_DIR", tempfile.mkdtemp(prefix="jaxgreen-test-cache-"))

import jax  # noqa: E402
from jax._src import xla_bridge  # noqa: E402

if not xla_bridge._backends:
  jax.config.update("jax_platforms", "cpu")


import pytest  # noqa: E402


class _LoweredText:
  """A stand-in for ``jax.stages.Lowered`` holding hand-written StableHLO."""

  def __init__(self, text):
    self.text = text

  def compiler_ir(self, dialect="stablehlo"):
    from jax._src.interpreters import mlir
    from jaxlib.mlir import ir

    return ir.Module.parse(self.text, context=mlir.make_ir_context())


@pytest.fixture
def lowered_text():
  """Hand-written StableHLO text -> an object ``count_lowered`` takes like a Lowered."""
  return _LoweredText
