"""The price tag before training: hours, kWh, CO2e and dollars of a planned run, estimated.

``forecast(fn, targets, steps, regions)(*args)`` and ``from_comparison(cmp, steps)`` give a
:class:`Forecast` of :class:`ForecastRow` s, every figure labelled an estimate.
"""

from jaxgreen._src.account.forecast import Forecast as Forecast
from jaxgreen._src.account.forecast import ForecastRow as ForecastRow
from jaxgreen._src.account.forecast import forecast as forecast
from jaxgreen._src.account.forecast import from_comparison as from_comparison

__all__ = ["Forecast", "ForecastRow", "forecast", "from_comparison"]
