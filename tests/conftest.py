"""Test configuration: the CPU platform only.

GPU targets compile deviceless and need jax's platform to be "cpu" before any backend
starts. pytest imports jaxgreen (hence jax) to resolve the warning filters in
pyproject.toml before this file runs, so the environment variable alone can come too
late: the config is also set here, at collection, before any test starts a backend.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
from jax._src import xla_bridge  # noqa: E402

if not xla_bridge._backends:
  jax.config.update("jax_platforms", "cpu")
