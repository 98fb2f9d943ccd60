"""One program, several pods: ``jaxgreen.compare(f, targets=[...])(*args)``.

:mod:`~jaxgreen._src.comparison.run` holds the entry point :func:`compare` and :class:`Setup`,
:mod:`~jaxgreen._src.comparison.results` the :class:`Comparison` it returns, its table,
plot and :func:`print_report`, :mod:`~jaxgreen._src.comparison.render` the formats of its
numbers, :mod:`~jaxgreen._src.comparison.sharding` the mesh shapes and placed arguments,
and :mod:`~jaxgreen._src.comparison.modules` the per-module report (``by_module=True``) and
its plot.
"""

from jaxgreen._src.comparison.modules import ModuleReport as ModuleReport
from jaxgreen._src.comparison.modules import ModuleRow as ModuleRow
from jaxgreen._src.comparison.render import PLOT_METRICS as PLOT_METRICS
from jaxgreen._src.comparison.results import Comparison as Comparison
from jaxgreen._src.comparison.results import TargetResult as TargetResult
from jaxgreen._src.comparison.results import print_report as print_report
from jaxgreen._src.comparison.run import Setup as Setup
from jaxgreen._src.comparison.run import compare as compare
from jaxgreen._src.comparison.sharding import mesh_shape_for as mesh_shape_for
from jaxgreen._src.comparison.sharding import place as place

__all__ = ["PLOT_METRICS", "Comparison", "ModuleReport", "ModuleRow", "Setup", "TargetResult",
           "compare", "mesh_shape_for", "place", "print_report"]
