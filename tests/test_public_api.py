"""The public line: what users import, listed once; the rest private; old paths still work.

As optax's ``_src``: the package and a handful of public modules, everything else under
``jaxgreen._src``. The tests read the package's own declarations (``jaxgreen._LAZY``,
``_SUBMODULES``, each public module's ``__all__``) and check them against the files.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import subprocess
import sys
import warnings

import pytest

import jaxgreen
from jaxgreen._src import _moved

PACKAGE = pathlib.Path(jaxgreen.__file__).parent
MAX_PUBLIC_MODULES = 20
# Integrations that need an extra: public, imported by path, not attributes of jaxgreen.
INTEGRATIONS = {"jaxgreen.keras", "jaxgreen.optuna"}


def _public_modules() -> list[str]:
  out = []
  for path in PACKAGE.rglob("*.py"):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    if not any(p.startswith("_") for p in parts):
      out.append(".".join(parts))
  return sorted(out)


def test_at_most_twenty_public_modules_and_each_is_declared():
  public = _public_modules()
  assert len(public) <= MAX_PUBLIC_MODULES, public
  declared = {"jaxgreen"} | {f"jaxgreen.{m}" for m in jaxgreen._SUBMODULES} | INTEGRATIONS
  assert set(public) == declared


def test_public_names_are_listed_once_and_the_type_checking_view_matches():
  tree = ast.parse((PACKAGE / "__init__.py").read_text())
  block = next(n for n in tree.body if isinstance(n, ast.If)
               and getattr(n.test, "id", None) == "TYPE_CHECKING")
  seen = {}
  for node in ast.walk(block):
    if isinstance(node, ast.ImportFrom):
      for alias in node.names:
        seen[alias.asname or alias.name] = (node.module, alias.name)
  lazy = {name: tuple(target.split(":")) for name, target in jaxgreen._LAZY.items()}
  submodules = {name: ("jaxgreen", name) for name in jaxgreen._SUBMODULES}
  assert seen == {**lazy, **submodules}
  assert jaxgreen.__all__ == sorted({*lazy, *submodules})
  assert not set(lazy) & set(submodules)


@pytest.mark.parametrize("name", jaxgreen.__all__)
def test_every_public_name_resolves(name):
  value = getattr(jaxgreen, name)
  assert value is not None
  assert name in dir(jaxgreen)


@pytest.mark.parametrize("module", sorted({f"jaxgreen.{m}" for m in jaxgreen._SUBMODULES}
                                          | {"jaxgreen.keras"}))
def test_public_modules_declare_what_they_export(module):
  if module == "jaxgreen.keras":  # an integration: its names need their library
    pytest.importorskip("keras", reason="jaxgreen.keras needs the [keras] extra")
  mod = importlib.import_module(module)
  names = getattr(mod, "__all__", None)
  if names is None:  # a module of its own code: its public functions and classes
    names = [k for k, v in vars(mod).items() if not k.startswith("_")
             and callable(v) and getattr(v, "__module__", None) == module]
  assert names, module
  for name in names:
    assert getattr(mod, name) is not None, f"{module}.{name}"


@pytest.mark.parametrize("name, home", [
    ("TargetError", "jaxgreen.targets"),
    ("LedgerError", "jaxgreen"),
    ("UncountedPrimitiveError", "jaxgreen"),
    ("UncountedPrimitiveWarning", "jaxgreen"),
    ("HloParseError", "jaxgreen.hlo"),
    ("FpoMismatch", "jaxgreen.testing"),
])
def test_documented_exceptions_import_from_their_home_and_say_it(name, home):
  cls = getattr(importlib.import_module(home), name)
  shown = f"{cls.__module__}.{cls.__qualname__}"  # as tracebacks and reprs say
  if name in jaxgreen.__all__:
    assert cls is getattr(jaxgreen, name)
    assert shown == f"jaxgreen.{name}"
  else:
    assert shown == f"{home}.{name}"


def test_targets_error_is_the_package_error():
  from jaxgreen.targets import TargetError

  with pytest.raises(jaxgreen.TargetError, match="tpu:v5e"):
    jaxgreen.targets.get_target("tpu:v5e:2x2x1")
  assert TargetError is jaxgreen.TargetError


# Old paths users wrote, and the public home the warning must name.
OLD_PATHS = [
    ("jaxgreen.account", "jaxgreen.Experiment"),
    ("jaxgreen.account.ledger", "jaxgreen.Ledger"),
    ("jaxgreen.account.sinks", "jaxgreen.sinks"),
    ("jaxgreen.account.energy", "jaxgreen.energy"),
    ("jaxgreen.account.forecast", "jaxgreen.forecast"),
    ("jaxgreen.api", "jaxgreen.count"),
    ("jaxgreen.cost", "jaxgreen.Cost"),
    ("jaxgreen.reconciliation", "jaxgreen.reconcile"),
    ("jaxgreen.comparison", "jaxgreen.compare"),
    ("jaxgreen.hlo.parse", "jaxgreen.hlo"),
    ("jaxgreen.jaxpr.registry", "jaxgreen.register_rule"),
]


@pytest.mark.parametrize("old, home", OLD_PATHS)
def test_an_old_import_path_works_and_warns_with_the_new_home(old, home):
  code = ("import warnings, sys\n"
          "warnings.simplefilter('always')\n"
          "with warnings.catch_warnings(record=True) as w:\n"
          f"  import {old} as m\n"
          "print(m.__name__)\n"
          "for x in w: print(x.category.__name__, x.filename, '|', x.message)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, check=True).stdout
  new = _moved.new_name(old)
  assert out.splitlines()[0] == new
  lines = [line for line in out.splitlines()[1:] if f"{old} is private" in line]
  assert len(lines) == 1, out
  assert lines[0].startswith("DeprecationWarning <string> |")  # on the user's own line
  assert home in lines[0] and new in lines[0]


def test_an_old_path_is_the_same_module_object():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    old = importlib.import_module("jaxgreen.account.tracker")
  new = importlib.import_module("jaxgreen._src.account.tracker")
  assert old is new
  assert new.__spec__.name == "jaxgreen._src.account.tracker"  # the real spec is kept


def test_attribute_access_to_an_old_module_warns():
  code = ("import warnings, jaxgreen\n"
          "warnings.simplefilter('error')\n"
          "try:\n"
          "  jaxgreen.reconciliation\n"
          "except DeprecationWarning as e:\n"
          "  print('warned:', e)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, check=True).stdout
  assert out.startswith("warned: jaxgreen.reconciliation is private")


def test_moved_list_names_only_modules_that_exist():
  for name in _moved.MOVED:
    assert importlib.util.find_spec(f"jaxgreen._src.{name}") is not None, name
  assert _moved.new_name("jaxgreen.hlo") is None  # still public
  assert _moved.new_name("jaxgreen.flax") is None
  assert _moved.new_name("jaxgreen.unknown") is None


def test_import_jaxgreen_imports_no_jax():
  code = "import sys, jaxgreen; print('jax' in sys.modules, 'jaxgreen._src.api' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, check=True).stdout
  assert out.split() == ["False", "False"]


ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository (tests run from it)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "guides").glob("*.md")),
        *sorted((ROOT / "docs" / "tutorials").glob("*.md"))]


def _documented_paths() -> set[str]:
  """Dotted jaxgreen names the prose writes in code spans (``jaxgreen.x.y``)."""
  import re

  out = set()
  for path in DOCS:
    if path.exists():  # the docs travel with the sources, not the wheel
      text = path.read_text()
      # The upgrade table names the 0.1 paths on purpose.
      text = re.sub(r"## Upgrading from 0\.1\n.*?(?=\n## )", "", text, flags=re.S)
      for span in re.findall(r"`([^`\n]+)`", text):
        out.update(re.findall(r"\bjaxgreen(?:\.[A-Za-z_][A-Za-z0-9_]*)+", span))
  return out


def test_every_name_the_docs_write_resolves_without_a_warning():
  paths = _documented_paths()
  if not paths:
    pytest.skip("the README and docs/ are not beside this installed package")
  bad = []
  for dotted in sorted(paths):
    parts = dotted.split(".")
    with warnings.catch_warnings():
      warnings.simplefilter("error", DeprecationWarning)  # an old path would warn
      try:
        obj: object = importlib.import_module(parts[0])
        for i, part in enumerate(parts[1:], 1):
          try:
            obj = getattr(obj, part)
          except AttributeError:
            obj = importlib.import_module(".".join(parts[:i + 1]))
      except Exception as e:  # noqa: BLE001 - each failure is listed
        # a name of an integration whose library is not installed: its error names the extra
        if not isinstance(e, ImportError) or "pip install 'jaxgreen[" not in str(e):
          bad.append(f"{dotted}: {type(e).__name__}: {e}")
  assert not bad, bad
