"""Energy meters for :class:`jaxgreen.Experiment` (``measure_energy=...``).

``NvmlMeter`` reads NVIDIA GPUs' energy counters (the ``[energy]`` extra), ``RaplMeter``
the CPU package's RAPL counters from sysfs, ``ZeusMeter`` the Zeus library's monitor. A
:class:`Meter` is anything with ``start()`` and ``stop() -> joules``. Where nothing
measures, the price tag's energy is an estimate from :func:`joules_per_flop`, labelled so.
``GATHER_TIMEOUT_S`` is how long process 0 waits for the other hosts' joules.
"""

from jaxgreen._src.account.energy import GATHER_TIMEOUT_S as GATHER_TIMEOUT_S
from jaxgreen._src.account.energy import Meter as Meter
from jaxgreen._src.account.energy import NvmlMeter as NvmlMeter
from jaxgreen._src.account.energy import RaplMeter as RaplMeter
from jaxgreen._src.account.energy import ZeusMeter as ZeusMeter
from jaxgreen._src.account.energy import joules_per_flop as joules_per_flop

__all__ = ["GATHER_TIMEOUT_S", "Meter", "NvmlMeter", "RaplMeter", "ZeusMeter", "joules_per_flop"]
