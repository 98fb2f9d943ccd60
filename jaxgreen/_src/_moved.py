"""Import paths of jaxgreen 0.1, before its internals became private, kept working for now.

Until 0.1 every module of the package was public by name (``jaxgreen.account.ledger``,
``jaxgreen.api``, ...). Since 0.2 the public line is :mod:`jaxgreen` and its public
submodules; the rest lives under ``jaxgreen._src``. An old path still imports, as the same
module object, with one :class:`DeprecationWarning` that names the public home of what it
holds. :func:`install` puts the finder first on :data:`sys.meta_path`; it costs nothing
for any other import.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
import warnings

#: The first part (after ``jaxgreen.``) of every module path that moved under ``_src``.
#: ``jaxgreen.hlo`` itself is still public (its count functions); its submodules moved.
MOVED = frozenset({
    "account", "api", "cli", "comparison", "compile_cache", "cost", "cost_model", "devices",
    "examples", "formulas", "jaxpr", "pods", "progress", "reconciliation", "report",
    "xla_analysis",
})
#: Old modules whose names went to a public module other than ``jaxgreen`` itself.
PUBLIC_MODULE = {
    "jaxgreen.account.sinks": "jaxgreen.sinks",
    "jaxgreen.account.optuna": "jaxgreen.optuna",
    "jaxgreen.account.forecast": "jaxgreen.forecast",
    "jaxgreen.account.card": "jaxgreen.card",
    "jaxgreen.account.energy": "jaxgreen.energy",
    "jaxgreen.account.carbon": "jaxgreen.carbon",
}


def new_name(old: str) -> str | None:
  """Where module ``old`` lives now, or None when it did not move."""
  parts = old.split(".")
  if len(parts) < 2 or parts[0] != "jaxgreen":
    return None
  if parts[1] in MOVED or (parts[1] == "hlo" and len(parts) > 2):
    return ".".join(["jaxgreen", "_src", *parts[1:]])
  return None


def _public_homes(old: str, module: types.ModuleType) -> str:
  if old in PUBLIC_MODULE:
    return f"import it as {PUBLIC_MODULE[old]}"
  if old.startswith("jaxgreen.hlo."):
    return "its count functions are in jaxgreen.hlo"
  jaxgreen = sys.modules["jaxgreen"]

  own = module.__spec__.name if module.__spec__ else module.__name__
  held = {id(v) for v in vars(module).values()  # what it defines, not what it imports
          if getattr(v, "__module__", "").startswith(own)
          or getattr(v, "__module__", None) == "jaxgreen"}
  names = []
  for name in jaxgreen.__all__:
    target = jaxgreen._LAZY.get(name)
    if target is None:
      continue
    mod, _, attr = target.partition(":")
    loaded = sys.modules.get(mod)
    if loaded is not None and id(getattr(loaded, attr, None)) in held:
      names.append(f"jaxgreen.{name}")
  if names:
    return "use " + ", ".join(sorted(names))
  return "it has no public names; tell us what you need from it"


def _stacklevel() -> int:
  """The ``stacklevel`` that puts the warning on the line of the user's import.

  Counted from :meth:`_Alias.exec_module` in frames outside the import system, as
  :func:`warnings.warn` counts them; jaxgreen's own ``__getattr__`` and
  :func:`importlib.import_module` are passed over too.
  """
  skip = {__file__, importlib.__file__, sys.modules["jaxgreen"].__file__}
  frame: types.FrameType | None = sys._getframe(2)
  level = 2
  while frame is not None:
    name = frame.f_code.co_filename
    if not ("importlib" in name and "_bootstrap" in name):
      if name not in skip:
        return level
      level += 1
    frame = frame.f_back
  return level


class _Alias:
  """Loads an old path as the module that now holds its code, and warns once (a loader of
  the import protocol; not an ``importlib.abc`` subclass, whose import costs milliseconds
  at every ``import jaxgreen``)."""

  def __init__(self, new: str):
    self.new = new

  def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
    self.old = spec.name
    module = importlib.import_module(self.new)
    self.spec = module.__spec__  # the import system sets the alias's; put the real one back
    return module

  def exec_module(self, module: types.ModuleType) -> None:
    module.__spec__ = self.spec
    warnings.warn(
        f"{self.old} is private since jaxgreen 0.2 (its code moved to {self.new}) and the "
        f"old path will be removed; {_public_homes(self.old, module)}.",
        DeprecationWarning, stacklevel=_stacklevel())


class _Finder:
  """The meta-path finder of the old paths (the import protocol's ``find_spec``)."""

  def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 (the protocol's)
    new = new_name(fullname)
    if new is None or importlib.util.find_spec(new) is None:
      return None
    return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
  if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder())
