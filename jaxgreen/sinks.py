"""Trackers fed by trials: the FPO series beside the user's own metrics.

``Experiment(..., sinks=[jaxgreen.sinks.TensorBoard("runs")])``, or ``WandB(...)``,
``MLflow(...)`` (each the extra of the same name); a :class:`Sink` subclass is any other.
"""

from jaxgreen._src.account.sinks import MLflow as MLflow
from jaxgreen._src.account.sinks import Sink as Sink
from jaxgreen._src.account.sinks import TensorBoard as TensorBoard
from jaxgreen._src.account.sinks import WandB as WandB
from jaxgreen._src.account.sinks import values_of as values_of

__all__ = ["MLflow", "Sink", "TensorBoard", "WandB", "values_of"]
