"""The price, in ADD and MUL, of every operation that is not a single add or multiply.

The default prices, their derivations and conventions are the table in
:mod:`jaxgreen._src.formulas.elementwise` (``python -m jaxgreen._src.cost_model`` prints it as
the README's Markdown table); a :class:`CostModel` overrides any of them per primitive.

A price may also be given for a primitive of the user's own: the counters tell this
module which primitives their rules count (:func:`note_rule`), so a misspelled name,
or a price jaxgreen would never read, is an error rather than a silent no-op.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from types import MappingProxyType

from jaxgreen._src.formulas.elementwise import DEFAULT_PRICES as DEFAULT_PRICES
from jaxgreen._src.formulas.elementwise import PRICE_TABLE as PRICE_TABLE
from jaxgreen._src.formulas.elementwise import TRANSCENDENTALS as TRANSCENDENTALS
from jaxgreen._src.formulas.elementwise import Price as Price
from jaxgreen._src.formulas.elementwise import markdown_table as markdown_table

# Primitives a registered counting rule handles, filled by the rule registry
# (:func:`jaxgreen._src.jaxpr.registry.register` calls :func:`note_rule`). A rule of the
# user's own may read a price under its primitive's name; jaxgreen's own rules count
# from shapes and read only the prices in DEFAULT_PRICES.
_USER_RULES: set[str] = set()
_BUILTIN_RULES: set[str] = set()


def note_rule(name: str, *, builtin: bool) -> None:
  """Records that primitive ``name`` has a counting rule (jaxgreen's own if ``builtin``)."""
  (_BUILTIN_RULES if builtin else _USER_RULES).add(name)


@dataclasses.dataclass(frozen=True)
class CostModel:
  """Prices, in (ADD, MUL) per element, of operations that are not one add or multiply.

  Args:
    prices: overrides, primitive name -> ``(adds, muls)``; merged over
      :data:`DEFAULT_PRICES`.

  Example:
    >>> import jax, jax.numpy as jnp, jaxgreen
    >>> cm = jaxgreen.CostModel({"exp": (1, 1)})
    >>> cm.price("exp"), cm.overridden()
    ((1, 1), {'exp': (1, 1)})
    >>> x = jax.ShapeDtypeStruct((8,), jnp.float32)
    >>> jaxgreen.count(jnp.exp, cost_model=cm)(x).fpo  # 8 x (1 + 1)
    16
  """

  prices: Mapping[str, Price] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not isinstance(self.prices, Mapping):
      raise TypeError(
          f"CostModel(prices=...) must be a mapping of primitive name to (adds, muls); "
          f"got {type(self.prices).__name__}: {self.prices!r}")
    merged = dict(DEFAULT_PRICES)
    for name, p in self.prices.items():
      _check_price(name, p)
      merged[name] = (int(p[0]), int(p[1]))
    object.__setattr__(self, "prices", MappingProxyType(merged))

  def price(self, name: str) -> Price | None:
    """The (ADD, MUL) price of one element of ``name``, or None if it has none."""
    return self.prices.get(name)

  def is_transcendental(self, name: str) -> bool:
    return name in TRANSCENDENTALS

  def overridden(self) -> dict[str, Price]:
    """The prices that differ from the defaults."""
    return {k: v for k, v in self.prices.items() if DEFAULT_PRICES.get(k) != v}


def _check_price(name: object, p: object) -> None:
  if not isinstance(name, str):
    raise ValueError(
        f"CostModel(prices={{{name!r}: {p!r}}}): keys are primitive names (str), "
        f"e.g. {{'exp': (7, 7)}}")
  ok = (isinstance(p, tuple | list) and len(p) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p))
  if not ok:
    raise ValueError(
        f"CostModel(prices={{{name!r}: {p!r}}}): each price must be a pair of "
        f"non-negative ints (adds, muls), e.g. {{'exp': (7, 7)}}")
  if name not in DEFAULT_PRICES and name not in _USER_RULES:
    near = difflib.get_close_matches(name, DEFAULT_PRICES, n=3)
    hint = f"did you mean {', '.join(map(repr, near))}? " if near else ""
    why = (" (jaxgreen counts it from its shapes and never reads a price for it, so "
           "this price would be ignored)" if name in _BUILTIN_RULES else "")
    raise ValueError(
        f"CostModel(prices={{{name!r}: ...}}): {name!r} is not priced by the cost "
        f"model{why}; {hint}the priced names are listed in "
        f"jaxgreen._src.cost_model.DEFAULT_PRICES (register a rule with "
        f"jaxgreen.register_rule first to price a primitive of your own)")


DEFAULT = CostModel()


if __name__ == "__main__":
  print(markdown_table())
