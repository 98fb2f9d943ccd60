"""Checks that the API reference documents jaxgreen's public surface, and nothing private.

The public surface is what the package itself declares public: the names of
``jaxgreen.__all__``, and for each public submodule among them (``jaxgreen.testing``,
``jaxgreen.flax``, ...) and each module in :data:`EXTRA_MODULES`, its ``__all__`` or else
the classes and functions it defines under a name without a leading underscore. Every
such name must be a documented Python object of the built site (an ``autofunction``,
``autoclass`` or ``automodule`` entry); a missing one, or a documented object whose path
has a private part, is a warning, and ``sphinx-build -W`` turns it into an error.
"""

from __future__ import annotations

import importlib
import inspect
import types
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: Public modules reached by their full path rather than through ``jaxgreen.__all__``.
EXTRA_MODULES = ("jaxgreen.optuna", "jaxgreen.keras")


def _module_names(module: types.ModuleType) -> list[str]:
  names = getattr(module, "__all__", None)
  if names is not None:
    return list(names)
  return [k for k, v in vars(module).items()
          if not k.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
          and v.__module__ == module.__name__]


def public_names() -> dict[str, list[str]]:
  """Accepted documented paths of every public name, keyed by how users write it.

  A public submodule whose `__name__` differs from how users write it
  may be documented under either path.
  """
  jaxgreen = importlib.import_module("jaxgreen")
  out: dict[str, list[str]] = {}
  modules: list[tuple[str, types.ModuleType]] = []
  for name in jaxgreen.__all__:
    value = getattr(jaxgreen, name)
    path = f"jaxgreen.{name}"
    if isinstance(value, types.ModuleType):
      modules.append((path, value))
      out[path] = [path, value.__name__]
    else:
      out[path] = [path]
  for path in EXTRA_MODULES:
    modules.append((path, importlib.import_module(path)))
    out[path] = [path]
  for path, module in modules:
    for member in _module_names(module):
      out[f"{path}.{member}"] = [f"{p}.{member}" for p in (path, module.__name__)]
  return out


def _check(app: Sphinx, env: Any) -> None:
  objects = env.get_domain("py").objects
  documented = set(objects)
  missing = [name for name, paths in public_names().items()
             if not any(p in documented for p in paths)]
  for name in sorted(missing):
    logger.warning("public name %s has no entry in the API reference (docs/api/)", name,
                   type="jaxgreen", subtype="api")
  # An object documented by its public name is also filed under where its code lives
  # (autodoc's ``canonical`` alias, e.g. jaxgreen._src.cost.Cost): that is not a page.
  private = sorted(n for n in documented if not objects[n].aliased
                   and n.startswith("jaxgreen") and any(part.startswith("_") and
                                                       not part.startswith("__")
                                                       for part in n.split(".")))
  for name in private:
    logger.warning("private name %s is documented; the API reference shows public names only",
                   name, type="jaxgreen", subtype="api")


def setup(app: Sphinx) -> dict[str, Any]:
  app.connect("env-check-consistency", _check)
  return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
