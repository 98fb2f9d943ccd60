"""``jaxgreen quiet-jax``: opt this environment's plain jax programs into the quiet start-up.

``import jaxgreen`` keeps the start-up noise of the ``[gpu]``/``[tpu]`` plugins (on a
machine without their chips) off the terminal in the program that imports it. A program
that never imports jaxgreen is quiet too only where the user asks for it:
``jaxgreen quiet-jax --install`` writes :data:`FILE` into the environment's
site-packages, one line that Python runs at start-up and that imports jaxgreen (no jax;
:func:`jaxgreen._src._quiet.install`); ``--uninstall`` removes it. Nothing is installed by
default.
"""

from __future__ import annotations

import argparse
import pathlib
import sysconfig

FILE = "jaxgreen-quiet-jax.pth"
# Python runs a .pth line that starts with "import" at start-up. A jaxgreen that fails
# to import (uninstalled before this file was removed) must not stop the interpreter.
LINE = 'import sys; exec("try:\\n import jaxgreen\\nexcept Exception:\\n pass")'
CONTENT = ("# jaxgreen quiet-jax --install: jax's plugin start-up noise kept off the terminal in "
           "every program; remove with jaxgreen quiet-jax --uninstall\n" + LINE + "\n")


def add(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser(
      "quiet-jax", help="quiet jax's start-up in every program of this environment (opt-in)",
      description="Programs that import jaxgreen keep the CUDA and TPU plugins' start-up "
                  "messages (on a machine without those chips) off the terminal. "
                  f"--install writes {FILE}, one line run at interpreter start, into this "
                  "environment's site-packages so that plain jax programs are quiet too; "
                  "--uninstall removes it. Without either, says whether it is installed.")
  action = p.add_mutually_exclusive_group()
  action.add_argument("--install", action="store_true", help=f"write {FILE}")
  action.add_argument("--uninstall", action="store_true", help=f"remove {FILE}")
  p.add_argument("--site-packages", metavar="DIR", default=None,
                 help="the folder to write to or remove from (default: this environment's "
                      f"site-packages, {sysconfig.get_path('purelib')})")
  p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
  folder = pathlib.Path(args.site_packages or sysconfig.get_path("purelib"))
  if not folder.is_dir():
    raise ValueError(f"--site-packages {str(folder)!r} is not a folder: pass the environment's "
                     f"site-packages (python -c 'import sysconfig; "
                     f"print(sysconfig.get_path(\"purelib\"))')")
  path = folder / FILE
  if args.install:
    print(install(path))
  elif args.uninstall:
    print(uninstall(path))
  else:
    print(f"installed: {path}" if path.exists() else
          f"not installed in {folder}: only programs that import jaxgreen are quieted "
          f"(jaxgreen quiet-jax --install for every program)")
  return 0


def install(path: pathlib.Path) -> str:
  """Writes :data:`CONTENT` to ``path`` (again only if it differs); says what it did."""
  if path.exists() and path.read_text() == CONTENT:
    return f"already installed: {path}"
  try:
    path.write_text(CONTENT)
  except OSError as e:
    raise ValueError(_refusal("write", path, e)) from None
  return (f"wrote {path}:\n  {LINE}\nEvery Python process started with that site-packages "
          f"now imports jaxgreen (no jax) to keep jax's start-up quiet; undo with jaxgreen "
          f"quiet-jax --uninstall")


def uninstall(path: pathlib.Path) -> str:
  """Removes ``path`` if it is there; says what it did."""
  if not path.exists():
    return f"not installed, nothing to remove: {path}"
  try:
    path.unlink()
  except OSError as e:
    raise ValueError(_refusal("remove", path, e)) from None
  return f"removed {path}"


def _refusal(verb: str, path: pathlib.Path, e: OSError) -> str:
  return (f"cannot {verb} {path} ({e.strerror or e}): run it as the user who owns this "
          f"environment (or pass --site-packages DIR), or import jaxgreen first in the "
          f"programs to quiet instead")
