"""Input signatures of tracked calls: the cache key, its description, and the checks of
``track``'s arguments that need the step's own signature (its static arguments).

Example:
  >>> import numpy as np
  >>> _describe([np.ones((2, 3), np.float32), 1.0], [], jitted=True)
  'float32[2,3], float'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxgreen._src._args import static_argnums_of
from jaxgreen._src._compat import jit_info
from jaxgreen._src.api import count


def _is_array(x: Any) -> bool:
  return hasattr(x, "shape") and hasattr(x, "dtype")


def _leaf_key(x: Any, jitted: bool) -> Any:
  if isinstance(x, jax.Array):
    # The aval (shape, dtype, weak type, sharding-in-types) is what jit traces on, so
    # it fixes the jaxpr and hence the count. Device placement only changes how that
    # same global program is compiled, not its FPO, so it is left out of the key.
    return x.aval
  if _is_array(x):  # numpy arrays and scalars
    return (tuple(x.shape), np.dtype(x.dtype))
  if jitted and isinstance(x, (bool, int, float, complex)):
    return ("py", type(x))  # jit abstracts Python scalars: the value does not matter
  try:
    hash(x)
  except TypeError:
    return ("id", type(x), id(x))
  # A plain function may branch on a Python value, so it is part of the signature.
  return ("value", type(x), x)


def _describe(leaves: Sequence[Any], statics: Sequence[Any], jitted: bool) -> str:
  parts = []
  for x in leaves:
    if _is_array(x):
      parts.append(f"{np.dtype(x.dtype).name}[{','.join(map(str, x.shape))}]")
    elif jitted and isinstance(x, (bool, int, float, complex)):
      # Any value shares this signature (see _leaf_key): name the type, not the
      # first value seen, so the signature id does not depend on it.
      parts.append(type(x).__name__)
    else:
      parts.append(repr(x))
  if statics:
    parts.append("static " + ", ".join(repr(s) for s in statics))
  return ", ".join(parts)


def _static_args(fn: Callable, static_argnums: int | Sequence[int] | None,
                 static_argnames: str | Sequence[str] | None
                 ) -> tuple[tuple[int, ...], tuple[str, ...]]:
  """The static arguments given, or for a ``jax.jit`` function those of the jit."""
  info = jit_info(fn)
  if static_argnums is None:
    static_argnums = tuple(getattr(info, "static_argnums", ()) or ())
  else:
    static_argnums = static_argnums_of(static_argnums, "track")
  if static_argnames is None:
    static_argnames = tuple(getattr(info, "static_argnames", ()) or ())
  elif isinstance(static_argnames, str):
    static_argnames = (static_argnames,)
  return tuple(static_argnums), tuple(static_argnames)


def _name_of(fn: Callable) -> str:
  qualname = getattr(fn, "__qualname__", None)
  return qualname if qualname else getattr(fn, "__name__", repr(fn))


def _check_count_options(fn: Callable, options: Mapping[str, Any]) -> None:
  """Rejects bad ``jaxgreen.count`` options now, not as an FPO of 0 at every call."""
  known = [n for n in inspect.signature(count).parameters if n not in ("fn", "static_argnums")]
  for k in options:
    if k not in known:
      raise TypeError(f"track({k}=...): not an option of track or jaxgreen.count; the "
                      f"count options are {', '.join(known)}")
  try:
    count(fn, **options)  # validates without tracing
  except (TypeError, ValueError) as e:
    msg = str(e)
    raise type(e)("track(" + msg[len("count("):] if msg.startswith("count(") else
                  f"track(...): {msg}") from None
