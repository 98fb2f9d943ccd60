"""Objects talk through public names: few foreign private accesses in the package.

A *foreign private access* is, in ``jaxgreen/**/*.py``:

- an attribute ``x._name`` (one leading underscore, not a dunder), read or written, or
- ``getattr``/``hasattr``/``setattr(x, "_name", ...)`` with the name as a literal,

except where

- ``x`` is ``self`` or ``cls``;
- ``x`` is a module: a name the file binds by an import, or to what a function of
  ``jaxgreen._src._compat`` returns (jax's own modules, e.g. ``xla_bridge``, handed out there);
- the access is inside the class that defines ``_name`` (a method, a class attribute, or an
  attribute it assigns on ``self``): Python's privacy is the class's, so ``other._hash`` in
  ``__eq__`` or ``earlier._model()`` in ``Throughput`` are the class reading its own;
- ``_name`` is a public protocol spelled with an underscore: namedtuple's ``_replace``,
  ``_asdict``, ``_fields``, ``_make``, and IPython's display hooks ``_repr_*_``;
- the file is ``jaxgreen/_src/_compat.py``: the one place meant to reach jax's private API.

Everything else counts, including private attributes of jax's objects outside
``_compat.py`` (``dtype._impl``): those belong in ``_compat.py`` too.
"""

from __future__ import annotations

import ast
import collections
import pathlib

import jaxgreen

PACKAGE = pathlib.Path(jaxgreen.__file__).parent
LIMIT = 15
ALLOWED_FILES = {"_src/_compat.py"}
PUBLIC_UNDERSCORED = {"_replace", "_asdict", "_fields", "_make"}


def _private(name: str) -> bool:
  if not name.startswith("_") or name.startswith("__") or name in PUBLIC_UNDERSCORED:
    return False
  return not (name.startswith("_repr_") and name.endswith("_"))


def _module_names(tree: ast.AST) -> set[str]:
  """Names bound to modules: by imports, or from a call into ``jaxgreen._src._compat``."""
  names: set[str] = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(a.asname or a.name.split(".")[0] for a in node.names)
    elif isinstance(node, ast.ImportFrom):
      names.update(a.asname or a.name for a in node.names)
    elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
          and "_compat" in ast.unparse(node.value.func)):
      names.update(t.id for t in node.targets if isinstance(t, ast.Name))
  return names


def _class_names(cls: ast.ClassDef) -> set[str]:
  """The names a class defines: its body's functions and assignments, and ``self.x =``."""
  names: set[str] = set()
  for node in cls.body:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
      names.add(node.name)
    elif isinstance(node, ast.Assign | ast.AnnAssign):
      targets = node.targets if isinstance(node, ast.Assign) else [node.target]
      names.update(t.id for t in targets if isinstance(t, ast.Name))
  for node in ast.walk(cls):
    if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name) and node.value.id == "self"):
      names.add(node.attr)
  return names


def _access(node: ast.AST) -> tuple[ast.expr, str] | None:
  """(receiver, private name) if ``node`` touches a private name."""
  if isinstance(node, ast.Attribute) and _private(node.attr):
    return node.value, node.attr
  if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
      and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
      and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
      and _private(node.args[1].value)):
    return node.args[0], node.args[1].value
  return None


def _visit(node: ast.AST, own: frozenset[str], modules: set[str], path: str,
           out: list[str]) -> None:
  if isinstance(node, ast.ClassDef):
    own = own | _class_names(node)
  hit = _access(node)
  if hit is not None:
    receiver, name = hit
    exempt = (isinstance(receiver, ast.Name)
              and (receiver.id in ("self", "cls") or receiver.id in modules))
    if not exempt and name not in own:
      out.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
  for child in ast.iter_child_nodes(node):
    _visit(child, own, modules, path, out)


def foreign_private_accesses(package: pathlib.Path = PACKAGE) -> list[str]:
  """``path:line: expression`` of every foreign private access (module docstring)."""
  out: list[str] = []
  for path in sorted(package.rglob("*.py")):
    rel = path.relative_to(package.parent).as_posix()
    if path.relative_to(package).as_posix() in ALLOWED_FILES:
      continue
    tree = ast.parse(path.read_text(), filename=str(path))
    _visit(tree, frozenset(), _module_names(tree), rel, out)
  return out


def test_the_rule_counts_what_it_says():
  source = (
      "import os\n"
      "from jaxgreen import _compat\n"
      "class A:\n"
      "  def __init__(self):\n"
      "    self._x = 1\n"
      "  def __eq__(self, other):\n"
      "    return self._x == other._x\n"  # the class's own: not counted
      "def f(a, t):\n"
      "  bridge = _compat.xla_bridge()\n"
      "  bridge._backends, os._exit, t._replace, a._repr_html_\n"  # modules, protocols
      "  return a._x, getattr(a, '_y'), a.__dict__\n")  # 2 counted: a._x, getattr
  tree = ast.parse(source)
  out: list[str] = []
  _visit(tree, frozenset(), _module_names(tree), "m.py", out)
  assert out == ["m.py:11: a._x", "m.py:11: getattr(a, '_y')"]


def test_few_foreign_private_accesses():
  found = foreign_private_accesses()
  per_file = collections.Counter(line.split(":")[0] for line in found)
  table = "\n".join(f"  {n:3d} {f}" for f, n in per_file.most_common())
  assert len(found) <= LIMIT, (
      f"{len(found)} foreign private accesses (at most {LIMIT}): use a public method or "
      f"the shared bookkeeping object instead\n{table}\n" + "\n".join(found))
