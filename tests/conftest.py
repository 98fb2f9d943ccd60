"""Test configuration: CPU only, and jaxgreen's own warnings are errors unless expected."""

import os

# GPU targets compile deviceless and need the CPU platform chosen before any backend
# starts; tests never use an accelerator.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
