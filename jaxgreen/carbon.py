"""CO2e of a run: kWh x the region's grid intensity (gCO2e/kWh) x the data centre's PUE.

``lookup(region, pue)`` gives a :class:`Carbon` with each figure's source and year;
``detect_region()`` finds the cloud region (``$JAXGREEN_REGION``, then the cloud's
metadata service). An unknown region is "unavailable", never a guess.
"""

from jaxgreen._src.account.carbon import Carbon as Carbon
from jaxgreen._src.account.carbon import detect_region as detect_region
from jaxgreen._src.account.carbon import lookup as lookup

__all__ = ["Carbon", "detect_region", "lookup"]
