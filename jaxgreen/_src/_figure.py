"""A matplotlib figure that shows itself in a notebook, made without pyplot.

A ``matplotlib.figure.Figure`` built directly leaves pyplot, the user's backend and open
figures alone, but IPython shows it as ``<Figure size ...>`` unless the inline backend
was set up (``%matplotlib inline``, or pyplot imported). :class:`Figure` adds
``_repr_png_``, so a returned figure displays inline with no magic; it is a plain
``Figure`` otherwise (``savefig``, ``axes``...). Imports matplotlib: import this module
where a plot is made, never at package import.
"""

from __future__ import annotations

import io

import matplotlib.figure

__all__ = ["Figure"]


class Figure(matplotlib.figure.Figure):
  """``matplotlib.figure.Figure`` that IPython displays as a PNG."""

  def _repr_png_(self) -> bytes:
    buf = io.BytesIO()
    # savefig renders on a temporary Agg canvas: this figure's own canvas is kept.
    self.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()
