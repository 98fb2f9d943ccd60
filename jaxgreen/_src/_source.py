"""The user's source lines behind a jaxpr equation: its Python stack, libraries folded.

jax records the Python traceback of every equation it traces (``eqn.source_info``), also
for the equations that ``grad``, ``vmap``, ``scan`` or ``remat`` create from the user's
ones. A *frame* is written ``file:line:function``; a *stack* is the user's frames joined
by ``;``, outermost first (the "folded stack" form flame-graph tools read). Frames of
libraries are folded away: jax, jaxlib, Flax, Optax, Equinox, NumPy, jaxgreen itself
(its bundled examples excepted), anything under ``site-packages``/``dist-packages`` and
the standard library. So the FPO of ``nn.Dense(8)(x)`` lands on that line of the user's
module, and ``""`` stands for equations with no user frame at all.

Example:
  >>> split_frame("/src/model.py:12:MLP.__call__")
  ('/src/model.py', 12, 'MLP.__call__')
  >>> innermost("train.py:40:main;model.py:12:MLP.__call__")
  'model.py:12:MLP.__call__'
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Sequence
from typing import Any

from jaxgreen._src import _compat

SEP = ";"  # between the frames of a stack, outermost first
UNATTRIBUTED = "<no user frame>"  # how tables name the stack ""

_LIBRARIES = ("jax", "jaxlib", "flax", "optax", "equinox", "chex", "orbax", "numpy",
              "jaxgreen", "jaxgreen_pytest", "_pytest", "pluggy", "IPython", "ipykernel")
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_EXAMPLES = os.path.join(_PACKAGE, "examples") + os.sep  # the bundled models are user code

# Caches shared by every count: code object -> (the code, is user code); (code id,
# offset) -> frame; tuple of those -> stack. Holding the code keeps its id unique.
_user: dict[int, tuple[Any, bool]] = {}
_frames: dict[tuple[int, int], str] = {}
_stacks: dict[tuple, str] = {}
# Traceback -> stack. jaxlib's tracebacks hash and compare by their frames (code, offset),
# in C++ (~0.2 us), and many equations share one: a GPT-2 train step has 5,934 equations
# and 264 distinct tracebacks.
_raw: dict[Any, str] = {}
_MAX_STACKS = 1 << 16


_prefixes: dict[tuple[bool, ...], tuple[str, ...]] = {}


def _library_prefixes() -> tuple[str, ...]:
  """Folders (or files) of the libraries loaded now, and the standard library's."""
  loaded = tuple(name in sys.modules for name in _LIBRARIES)
  hit = _prefixes.get(loaded)
  if hit is None:
    hit = _prefixes[loaded] = _find_prefixes()
  return hit


def _find_prefixes() -> tuple[str, ...]:
  out = [p for p in {sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")} if p]
  for name in _LIBRARIES:
    mod = sys.modules.get(name)
    f = getattr(mod, "__file__", None)
    if f:
      base = os.path.dirname(os.path.abspath(f))
      out.append(base + os.sep if os.path.basename(f) == "__init__.py" else os.path.abspath(f))
  return tuple(out)


def is_user_file(filename: str) -> bool:
  """Whether frames of ``filename`` are the user's (see the module docs for what is not).

  >>> is_user_file("/home/me/model.py"), is_user_file(os.__file__)
  (True, False)
  """
  if filename.startswith("<"):  # <stdin>, <string>, a notebook cell, a doctest: user's
    return not filename.startswith("<frozen")
  if filename.startswith(_EXAMPLES):
    return True
  if f"{os.sep}site-packages{os.sep}" in filename or f"{os.sep}dist-packages{os.sep}" in filename:
    return False
  return not os.path.abspath(filename).startswith(_library_prefixes())


def stack_of(traceback: Any) -> str:
  """The folded user stack of a jaxlib traceback (``eqn.source_info.traceback``)."""
  if traceback is None:
    return ""
  try:
    hit = _raw.get(traceback)
  except TypeError:  # pragma: no cover - a jaxlib whose tracebacks do not hash
    return _stack(traceback, *_compat.raw_frames(traceback))
  if hit is None:
    if len(_raw) >= _MAX_STACKS:
      _raw.clear()
    hit = _raw[traceback] = _stack(traceback, *_compat.raw_frames(traceback))
  return hit


def _stack(traceback: Any, codes: Sequence[Any], lastis: Sequence[int]) -> str:
  key = []
  user = _user
  for i in range(len(codes) - 1, -1, -1):  # outermost first
    code = codes[i]
    hit = user.get(id(code))
    if hit is None or hit[0] is not code:
      hit = user[id(code)] = (code, is_user_file(code.co_filename))
    if hit[1]:
      key.append((id(code), lastis[i]))
  if not key:
    return ""
  k = tuple(key)
  s = _stacks.get(k)
  if s is None:
    if len(_stacks) >= _MAX_STACKS:
      _stacks.clear()
    by_id = {id(c): c for c in codes}
    s = _stacks[k] = SEP.join(_frame(type(traceback), by_id[c], lasti) for c, lasti in k)
  return s


def _frame(tb_type: type, code: Any, lasti: int) -> str:
  k = (id(code), lasti)
  f = _frames.get(k)
  if f is None:
    line = _compat.code_line(tb_type, code, lasti)
    name = getattr(code, "co_qualname", code.co_name)
    f = _frames[k] = f"{code.co_filename}:{line}:{name}"
  return f


def split_frame(frame: str) -> tuple[str, int, str]:
  """``"file:line:function"`` -> ``(file, line, function)`` (a file may hold colons)."""
  file, line, function = frame.rsplit(":", 2)
  return file, int(line), function


def frames(stack: str) -> list[str]:
  """The frames of a folded stack, outermost first (none for ``""``)."""
  return stack.split(SEP) if stack else []


def innermost(stack: str) -> str:
  """The user's innermost frame of a stack: the line the work is written on."""
  return stack.rsplit(SEP, 1)[-1]


def short(frame: str, root: str | None = None) -> str:
  """``frame`` with its file relative to ``root`` (the working directory by default)
  when it lies below it, for tables and baselines that travel between machines."""
  if not frame:
    return UNATTRIBUTED
  file, line, function = split_frame(frame)
  base = os.path.abspath(root or os.getcwd()) + os.sep
  if file.startswith(base):
    file = file[len(base):]
  return f"{file}:{line}:{function}"
