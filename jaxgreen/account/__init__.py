"""Accounting: what training cost, as Green AI's Equation 1, Cost(R) ∝ E · D · H.

* :mod:`~jaxgreen.account.tracker`: the hot path, ``@track`` on a train or eval step;
* :mod:`~jaxgreen.account.attribution`: which trial a step belongs to;
* :mod:`~jaxgreen.account.experiment`: the experiment/trial lifecycle;
* :mod:`~jaxgreen.account.preemption`: SIGTERM commits open trials;
* :mod:`~jaxgreen.account.ledger`: the ledger (a SQLite file, or a PostgreSQL server
  shared by every host: :mod:`~jaxgreen.account._postgres`), every SQL statement of
  jaxgreen;
* :mod:`~jaxgreen.account.schema`: the ledger's tables and the upgrade of older files;
* :mod:`~jaxgreen.account.pricetag`: the price tag and its text/Markdown/JSON rendering;
* :mod:`~jaxgreen.account.energy`: energy meters (NVML, RAPL) and estimates;
* :mod:`~jaxgreen.account.carbon`: CO2e from the region's grid intensity and PUE
  (published tables in :mod:`~jaxgreen.account._grid_data`);
* :mod:`~jaxgreen.account.remat`: model FPO (no rematerialisation) for MFU vs HFU;
* :mod:`~jaxgreen.account.forecast`: the price tag before training (hours, kWh, CO2e, $);
* :mod:`~jaxgreen.account.card`: the report where it lands (model card, paper appendix,
  NeurIPS checklist, compute thresholds);
* :mod:`~jaxgreen.account.sinks`: trackers (TensorBoard, W&B, MLflow) fed by trials;
* :mod:`~jaxgreen.account.optuna`: Optuna studies as experiments (the ``[optuna]`` extra;
  not imported here).
"""

from __future__ import annotations

from jaxgreen.account.experiment import Experiment as Experiment
from jaxgreen.account.experiment import Trial as Trial
from jaxgreen.account.experiment import current_trial as current_trial
from jaxgreen.account.ledger import Ledger as Ledger
from jaxgreen.account.ledger import LedgerError as LedgerError
from jaxgreen.account.ledger import merge as merge
from jaxgreen.account.pricetag import PriceTag as PriceTag
from jaxgreen.account.pricetag import TrialCost as TrialCost
from jaxgreen.account.throughput import Throughput as Throughput
from jaxgreen.account.tracker import Tracker as Tracker
from jaxgreen.account.tracker import track as track

__all__ = ["Experiment", "Ledger", "LedgerError", "PriceTag", "Throughput", "Tracker", "Trial",
           "TrialCost", "current_trial", "merge", "track"]
