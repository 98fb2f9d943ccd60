"""One program, several pods: ``jaxgreen.compare(f, targets=[...])(*args)``.

:mod:`~jaxgreen.comparison.run` holds the entry point :func:`compare` and :class:`Setup`,
:mod:`~jaxgreen.comparison.results` the :class:`Comparison` it returns,
:mod:`~jaxgreen.comparison.render` its tables, JSON, plot and :func:`print_report`, and
:mod:`~jaxgreen.comparison.sharding` the mesh shapes and placed arguments, and
:mod:`~jaxgreen.comparison.modules` the per-module report (``by_module=True``).
"""

from jaxgreen.comparison.modules import ModuleReport as ModuleReport
from jaxgreen.comparison.modules import ModuleRow as ModuleRow
from jaxgreen.comparison.render import PLOT_METRICS as PLOT_METRICS
from jaxgreen.comparison.render import print_report as print_report
from jaxgreen.comparison.results import Comparison as Comparison
from jaxgreen.comparison.results import TargetResult as TargetResult
from jaxgreen.comparison.run import Setup as Setup
from jaxgreen.comparison.run import compare as compare
from jaxgreen.comparison.sharding import mesh_shape_for as mesh_shape_for
from jaxgreen.comparison.sharding import place as place

__all__ = ["PLOT_METRICS", "Comparison", "ModuleReport", "ModuleRow", "Setup", "TargetResult",
           "compare", "mesh_shape_for", "place", "print_report"]
