"""Every use of jax's private internals, in one place, with the releases it was checked on.

jaxgreen supports jax 0.10.2 to 0.12.x. Public API (``jax.extend``, ``jax.stages``,
``jax.experimental.topologies``) is used everywhere else; what only exists under
``jax._src`` / ``jax._src.lib`` is reached through the names below, each with a fallback
for a layout that moved, so a new jax release degrades a feature instead of breaking
``import jaxgreen``. When a jax release moves one of these, this is the only file to edit.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import jax

# -- tracing -------------------------------------------------------------------------

try:  # jax 0.4.30 .. 0.12: True outside any trace (~0.3 us), used by @track's hot path
  from jax._src.core import trace_state_clean as trace_state_clean
except ImportError:  # pragma: no cover - moved: every call is then treated as top level

  def trace_state_clean() -> bool:
    return True


try:  # jax 0.4 .. 0.12: the concrete array type; `type(x) is ArrayImpl` is ~10x cheaper
  from jax._src.array import ArrayImpl as ArrayImpl
except ImportError:  # pragma: no cover
  ArrayImpl = jax.Array  # type: ignore[misc,assignment]

# jax 0.4 .. 0.12: dead-code elimination of a jaxpr (jax.extend has no public twin).
from jax._src.interpreters.partial_eval import dce_jaxpr as dce_jaxpr  # noqa: E402

# -- random --------------------------------------------------------------------------

try:  # jax 0.10 .. 0.12: the programs jax lowers random_bits / split / fold_in to
  from jax._src import core as _jax_core
  from jax._src.random import prng as prng
except ImportError:  # pragma: no cover - the block formulas of rules/random.py are used
  prng = None  # type: ignore[assignment]
  _jax_core = None  # type: ignore[assignment]


def physical_aval(aval: Any) -> Any:
  """The uint32 array a typed PRNG key array is stored as (jax 0.10 .. 0.12)."""
  return _jax_core.physical_aval(aval)


def key_impl(aval: Any) -> Any:
  """The PRNG implementation of a typed key array's dtype (jax 0.10 .. 0.12)."""
  return aval.dtype._impl


try:
  from jax._src.random import core as _random_core
except ImportError:  # pragma: no cover - random_gamma is then reported as uncounted
  _random_core = None  # type: ignore[assignment]
# The samplers jax lowers random_gamma (``_gamma_impl`` in jax 0.10 .. 0.12.0,
# ``_gamma_impl_local`` from 0.12.1) and random_poisson (jax >= 0.12.1) to; None where
# absent (the primitive is then reported as uncounted).
gamma_impl: Any = (getattr(_random_core, "_gamma_impl", None)
                   or getattr(_random_core, "_gamma_impl_local", None))
poisson_impl: Any = getattr(_random_core, "_poisson_impl_local", None)

# -- backends and plugins ------------------------------------------------------------

#: The logger jax reports plugin start-up failures on (jax 0.10 .. 0.12).
XLA_BRIDGE_LOGGER = "jax._src.xla_bridge"


def xla_bridge() -> ModuleType:
  """jax's backend registry (``_backend_factories``, ``_backends``,
  ``_topology_factories``, ``_discover_and_register_pjrt_plugins``; jax 0.10 .. 0.12)."""
  from jax._src import xla_bridge as xb

  return xb


def hlo_module_cost_analysis(module: Any) -> Any:
  """XLA's HloCostAnalysis of an HloModule, with the CPU client (jax 0.10 .. 0.12)."""
  from jax._src.lib import _jax

  return _jax.hlo_module_cost_analysis(xla_bridge().get_backend("cpu"), module)

# -- the distributed runtime ---------------------------------------------------------


def distributed_client() -> Any | None:
  """The client of ``jax.distributed``'s coordination service, or None.

  None when ``jax.distributed.initialize`` was not called (or was shut down), or when
  jax moved it. Its key-value store (``key_value_set(key, value)``,
  ``blocking_key_value_get(key, timeout_in_ms)``, ``key_value_delete(key)``; jax 0.10 ..
  0.12) lets hosts exchange small host values without a device collective, so a host
  that died cannot hang the others.
  """
  try:
    from jax._src import distributed
  except ImportError:  # pragma: no cover - moved: other hosts' values are not gathered
    return None
  state = getattr(distributed, "global_state", None)
  return getattr(state, "client", None)

# -- source locations ----------------------------------------------------------------


def raw_frames(traceback: Any) -> tuple[Any, Any]:
  """(code objects, last instruction offsets), innermost frame first, of the traceback
  jax records on every jaxpr equation (``eqn.source_info.traceback``, a jaxlib
  ``Traceback``; jax 0.10 .. 0.12). Empty when there is none or its layout moved."""
  if traceback is None:
    return (), ()
  try:
    return traceback.raw_frames()
  except AttributeError:  # pragma: no cover - moved: equations are then unattributed
    return (), ()


def code_line(traceback_type: Any, code: Any, lasti: int) -> int:
  """The line of ``code`` executing at offset ``lasti`` (jaxlib's
  ``Traceback.code_addr2line``; jax 0.10 .. 0.12), else the function's first line."""
  try:
    return int(traceback_type.code_addr2line(code, lasti))
  except (AttributeError, TypeError, ValueError):  # pragma: no cover - moved
    return int(code.co_firstlineno)

# -- jitted functions ----------------------------------------------------------------


def jit_cache_size(fn: Any) -> Any | None:
  """The ``_cache_size()`` of a ``jax.jit`` function (how many executables its cache
  holds; jax 0.10 .. 0.12), or None for a function that is not jitted."""
  return getattr(fn, "_cache_size", None)


def jit_info(fn: Any) -> Any | None:
  """The ``_jit_info`` of a ``jax.jit`` function (its ``static_argnums`` and
  ``static_argnames``; jax 0.10 .. 0.12), or None."""
  return getattr(fn, "_jit_info", None)
