"""Accounting: what training cost, as Green AI's Equation 1, Cost(R) ∝ E · D · H.

* :mod:`~jaxgreen._src.account.tracker`: the hot path, ``@track`` on a train or eval step;
* :mod:`~jaxgreen._src.account.attribution`: which trial a step belongs to;
* :mod:`~jaxgreen._src.account.experiment`: the experiment/trial lifecycle;
* :mod:`~jaxgreen._src.account.preemption`: SIGTERM commits open trials;
* :mod:`~jaxgreen._src.account.ledger`: the ledger (a SQLite file, or a PostgreSQL server
  shared by every host: :mod:`~jaxgreen._src.account._postgres`), every SQL statement of
  jaxgreen;
* :mod:`~jaxgreen._src.account.schema`: the ledger's tables and the upgrade of older files;
* :mod:`~jaxgreen._src.account.pricetag`: the price tag and its text/Markdown/JSON rendering;
* :mod:`~jaxgreen._src.account.energy`: energy meters (NVML, RAPL) and estimates;
* :mod:`~jaxgreen._src.account.carbon`: CO2e from the region's grid intensity and PUE
  (published tables in :mod:`~jaxgreen._src.account._grid_data`);
* :mod:`~jaxgreen._src.account.remat`: model FPO (no rematerialisation) for MFU vs HFU;
* :mod:`~jaxgreen._src.account.forecast`: the price tag before training (hours, kWh, CO2e, $);
* :mod:`~jaxgreen._src.account.card`: the report where it lands (model card, paper appendix,
  NeurIPS checklist, compute thresholds);
* :mod:`~jaxgreen._src.account.sinks`: trackers (TensorBoard, W&B, MLflow) fed by trials;
* :mod:`~jaxgreen._src.account.optuna`: Optuna studies as experiments (the ``[optuna]`` extra;
  not imported here).
"""

from __future__ import annotations

from jaxgreen._src.account.experiment import Experiment as Experiment
from jaxgreen._src.account.experiment import Trial as Trial
from jaxgreen._src.account.experiment import current_trial as current_trial
from jaxgreen._src.account.ledger import Ledger as Ledger
from jaxgreen._src.account.ledger import LedgerError as LedgerError
from jaxgreen._src.account.ledger import merge as merge
from jaxgreen._src.account.pricetag import PriceTag as PriceTag
from jaxgreen._src.account.pricetag import TrialCost as TrialCost
from jaxgreen._src.account.throughput import Throughput as Throughput
from jaxgreen._src.account.tracker import Tracker as Tracker
from jaxgreen._src.account.tracker import track as track

__all__ = ["Experiment", "Ledger", "LedgerError", "PriceTag", "Throughput", "Tracker", "Trial",
           "TrialCost", "current_trial", "merge", "track"]
