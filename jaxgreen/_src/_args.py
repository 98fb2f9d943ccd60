"""Arguments every entry point takes the same way: ``static_argnums``, checked once here.

A leaf: :class:`jaxgreen._src.program.Program`, :meth:`jaxgreen.targets.Target.compile` and
``track``'s signatures all normalise through :func:`static_argnums_of`.
"""

from __future__ import annotations

from collections.abc import Sequence


def static_argnums_of(static_argnums: int | Sequence[int], caller: str = "count"
                      ) -> tuple[int, ...]:
  """``static_argnums`` as a tuple of ints; anything else is a TypeError naming
  ``caller``'s argument."""
  nums = (static_argnums,) if isinstance(static_argnums, int) else static_argnums
  try:
    out: tuple[int, ...] | None = tuple(nums)
  except TypeError:
    out = None
  if out is None or any(isinstance(i, bool) or not isinstance(i, int) for i in out):
    raise TypeError(f"{caller}(static_argnums={static_argnums!r}) must be an int or a "
                    f"sequence of ints (argument positions), e.g. static_argnums=(1,)")
  return out
