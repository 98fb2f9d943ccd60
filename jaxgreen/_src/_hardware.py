"""Whether this machine has GPU or TPU chips, checked from the file system without jax.

The one hardware check of the package: :mod:`jaxgreen._src.devices` uses it to choose between
the machine's own chips and deviceless compilation, and :mod:`jaxgreen._src._quiet` to know
whether a plugin's failed start is noise (no chip) or news (a chip the plugin cannot
use). It imports only :mod:`os`, so the quiet start-up can ask before jax is imported.

Example:
  >>> hardware_present("tpu") in (True, False)
  True
"""

from __future__ import annotations

import os


def hardware_present(platform: str) -> bool:
  """Whether the machine has ``platform``'s accelerators (``"gpu"`` or ``"tpu"``).

  NVIDIA's driver exposes /proc/driver/nvidia and /dev/nvidia<N>; a TPU VM exposes its
  chips as /dev/accel<N> (v4, v5e, v6e) or /dev/vfio/<N> (v5p). Checked without
  starting jax.
  """
  if platform == "gpu":
    return (os.path.exists("/proc/driver/nvidia/version")
            or _numbered("/dev", "nvidia"))
  return _numbered("/dev", "accel") or _numbered("/dev/vfio", "")


def _numbered(folder: str, prefix: str) -> bool:
  """Whether ``folder`` has an entry ``<prefix><digits>...`` (as /dev/nvidia0)."""
  try:
    names = os.listdir(folder)
  except OSError:
    return False
  return any(n.startswith(prefix) and n[len(prefix):len(prefix) + 1].isdigit() for n in names)
