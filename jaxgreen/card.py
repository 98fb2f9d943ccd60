"""The report where it lands: a model card, a paper appendix, the NeurIPS checklist.

``report(ledger, experiment)`` gathers a ledger's experiment into a :class:`Report`, whose
``hf()``, ``latex()``, ``markdown()``, ``neurips()``, ``thresholds()`` and ``to_json()``
write it; ``jaxgreen ledger card`` is the same from the command line.
"""

from jaxgreen._src.account.card import Report as Report
from jaxgreen._src.account.card import report as report

__all__ = ["Report", "report"]
