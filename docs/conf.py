"""Sphinx configuration of jaxgreen's documentation.

Build (from the repository root, with ``pip install '.[docs]'``)::

  sphinx-build -W -b html docs docs/_build/html

The tutorials are MyST Markdown notebooks executed during the build, on the CPU, and
cached in ``docs/_build/.jupyter_cache``: a rebuild runs only the notebooks that changed.
"""

from __future__ import annotations

import os
import sys

# Tutorials compile for TPU and GPU targets without the chips; they never need them.
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.setdefault("JAXGREEN_DEVICELESS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

import jaxgreen  # noqa: E402

project = "jaxgreen"
author = "jaxgreen authors"
copyright = "jaxgreen authors"
release = jaxgreen.__version__
version = release

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
  "sphinx_design",  # the landing page's cards
  "jaxgreen_docs",  # fails the build when a public name has no API entry
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]
templates_path: list[str] = []

# -- MyST and notebook execution ------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "cache"
nb_execution_cache_path = os.path.join(os.path.dirname(__file__), "_build", ".jupyter_cache")
nb_execution_timeout = 300
nb_execution_raise_on_error = True  # a failing tutorial fails the build
nb_execution_show_tb = True
nb_merge_streams = True
nb_render_markdown_format = "myst"  # Markdown outputs (tables) render as tables

# -- API reference --------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- HTML -----------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "jaxgreen"
html_static_path: list[str] = []
# A section titled with the query (an FAQ question) is the first search hit.
html_search_scorer = os.path.join(os.path.dirname(__file__), "_static", "search_scorer.js")
html_theme_options = {
  "show_toc_level": 2,
  "navigation_with_keys": False,
  "use_download_button": True,
}
html_show_sourcelink = False
