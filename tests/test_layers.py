"""The package's import rules: layers import only downward, and no module imports itself
back through others (imports inside functions count too).

The layers are the data flow: trace -> count -> reconcile -> account -> report -> CLI. The
README's Development section shows the same table.
"""

from __future__ import annotations

import ast
import pathlib

import jaxgreen

PACKAGE = pathlib.Path(jaxgreen.__file__).parent

# Layer of each module (a package's entry covers its submodules); lower imports nothing
# higher. Modules of one layer may import each other, without cycles.
LAYERS = {
    # 0: leaves: import nothing of jaxgreen, or only other leaves.
    "jaxgreen._version": 0, "jaxgreen._src": 0, "jaxgreen._src._moved": 0,
    "jaxgreen._src._args": 0, "jaxgreen._src._compat": 0, "jaxgreen._src._quiet": 0,
    "jaxgreen._src._hardware": 0, "jaxgreen._src._scope": 0, "jaxgreen._src._target_error": 0,
    "jaxgreen._src.report": 0, "jaxgreen._src._source": 0, "jaxgreen._src._pprof": 0,
    "jaxgreen._src._report_html": 0, "jaxgreen.chips": 0, "jaxgreen._src.formulas": 0,
    "jaxgreen._src._html": 0, "jaxgreen._src._figure": 0,
    # 1: the result type, the prices, the sums a count fills.
    "jaxgreen._src.cost": 1, "jaxgreen._src.cost_model": 1, "jaxgreen._src.cost_acc": 1,
    # 2: counting, one IR each.
    "jaxgreen._src.jaxpr": 2, "jaxgreen._src.hlo": 2, "jaxgreen._src._state": 2,
    # 3: a function at its stages and counted; machines and what XLA says.
    "jaxgreen._src.program": 3, "jaxgreen._src.api": 3, "jaxgreen.targets": 3,
    "jaxgreen._src.devices": 3, "jaxgreen._src.compile_cache": 3, "jaxgreen._src.progress": 3,
    "jaxgreen._src.xla_analysis": 3, "jaxgreen._src.pods": 3,
    # 4: reconciling stages and comparing machines; guards for other projects' tests.
    "jaxgreen._src.reconciliation": 4, "jaxgreen._src.comparison": 4, "jaxgreen.testing": 4,
    # 5: accounting for training, and reports on it; models.
    "jaxgreen._src.account": 5, "jaxgreen.curves": 5, "jaxgreen.flax": 5,
    "jaxgreen._src.examples": 5, "jaxgreen.keras": 5,
    # 6: the command line and the public surface (the package and its public modules).
    "jaxgreen._src.cli": 6, "jaxgreen": 6, "jaxgreen.__main__": 6,
}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def _layer(module: str) -> int:
  name = module
  while name not in LAYERS:
    if "." not in name:
      raise AssertionError(f"{module} has no layer in tests/test_layers.py: add it")
    name = name.rsplit(".", 1)[0]
  return LAYERS[name]


def _imports(path: pathlib.Path, module: str, type_checking: bool = False) -> set[str]:
  """jaxgreen modules ``path`` imports, anywhere in it (TYPE_CHECKING blocks only if asked)."""
  tree = ast.parse(path.read_text())
  skip = set() if type_checking else {
      id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
      and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
  package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
  out = set()
  for node in ast.walk(tree):
    if id(node) in skip:
      continue
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names if a.name.split(".")[0] == "jaxgreen"}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                        + ([base] if base else []))
      if base.split(".")[0] != "jaxgreen":
        continue
      for a in node.names:  # `from jaxgreen import x` may name a module
        sub = f"{base}.{a.name}"
        out.add(sub if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                or (PACKAGE.parent / sub.replace(".", "/")).is_dir() else base)
  out.discard(module)
  return out


def _graph(type_checking: bool = False) -> dict[str, set[str]]:
  return {_module_name(p): _imports(p, _module_name(p), type_checking)
          for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer_and_imports_only_downward():
  upward = [f"{m} (layer {_layer(m)}) imports {i} (layer {_layer(i)})"
            for m, imports in sorted(_graph().items()) for i in sorted(imports)
            if i != "jaxgreen" and _layer(i) > _layer(m)]
  assert upward == []


def test_only_the_public_surface_and_cli_import_the_package_root():
  # `import jaxgreen` from inside would make every module depend on all of them.
  users = sorted(m for m, imports in _graph().items() if "jaxgreen" in imports
                 and _layer(m) < 6)
  assert users == []


def test_no_import_cycles():  # noqa: C901 - Tarjan's algorithm reads best in one piece
  graph = _graph(type_checking=True)  # what type checkers follow counts too
  index: dict[str, int] = {}
  low: dict[str, int] = {}
  stack: list[str] = []
  cycles = []

  def visit(v: str) -> None:  # Tarjan's strongly connected components
    index[v] = low[v] = len(index)
    stack.append(v)
    for w in graph.get(v, ()):
      if w not in graph:
        continue
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        cycles.append(sorted(comp))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  # A package's __init__ re-exporting its submodules, which import siblings through the
  # package, is not a cycle of the code: only cycles between distinct files are reported.
  cycles = [c for c in cycles
            if not all(x == c[0] or x.startswith(c[0] + ".") for x in c)]
  assert cycles == []


def test_the_graph_sees_imports_at_every_level():
  graph = _graph()
  assert "jaxgreen._src.cost" in graph["jaxgreen._src.api"]  # module level
  assert "jaxgreen._src._compat" in graph["jaxgreen._src._quiet"]  # inside a function
  assert "jaxgreen._src.hlo.ir" in graph["jaxgreen._src.hlo.parse"]  # within a package
