"""Training-run tracking: params, metrics, the dataset versions a run read, the models it made.

A small MLflow-like API over the in-process :class:`RunTracker` or the HTTP
:class:`~synapsenet.services.experiments.client.RunsClient`::

    with start_run(tracker, project="fraud", params={"depth": 6}) as run:
        run.log_dataset("transactions@production")
        run.log_metric("auc", 0.91)
        run.log_model("fraud-detector", "7")
"""

from synapsenet.services.experiments.active_run import ActiveRun, RunTracking, start_run
from synapsenet.services.experiments.models import (
    LoggedDataset,
    LoggedModel,
    Metric,
    ParamValue,
    Run,
    RunStatus,
)
from synapsenet.services.experiments.ports import (
    ClientDatasetResolver,
    ClientLineageLinker,
    DatasetResolver,
    EngineDatasetResolver,
    LineageLinker,
)
from synapsenet.services.experiments.tracker import RunTracker

__all__ = [
    "ActiveRun",
    "ClientDatasetResolver",
    "ClientLineageLinker",
    "DatasetResolver",
    "EngineDatasetResolver",
    "LineageLinker",
    "LoggedDataset",
    "LoggedModel",
    "Metric",
    "ParamValue",
    "Run",
    "RunStatus",
    "RunTracker",
    "RunTracking",
    "start_run",
]
