"""A/B testing and canary rollouts.

Sticky splits, ramps, bandits, sequential statistics, and automatic rollback when a guardrail
metric degrades.
"""

from synapsenet.services.abtesting.controller import ExperimentController
from synapsenet.services.abtesting.engine import ABTestingEngine, ModelRegistryPort
from synapsenet.services.abtesting.models import (
    BanditConfig,
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    MetricDefinition,
    MetricDirection,
    MetricKind,
    Observation,
    RampStep,
    RollbackPolicy,
    TrafficAllocationStrategy,
    Variant,
)
from synapsenet.services.abtesting.reporting import ExperimentResults, MetricResult
from synapsenet.services.abtesting.rollback import (
    AutoRollbackManager,
    GuardrailCheck,
    RollbackAction,
    RollbackDecision,
)
from synapsenet.services.abtesting.routing import Assignment
from synapsenet.services.abtesting.statistics.analyzer import StatisticalAnalyzer

__all__ = [
    "ABTestingEngine",
    "Assignment",
    "AutoRollbackManager",
    "BanditConfig",
    "Experiment",
    "ExperimentController",
    "ExperimentResults",
    "ExperimentSpec",
    "ExperimentStatus",
    "GuardrailCheck",
    "MetricDefinition",
    "MetricDirection",
    "MetricKind",
    "MetricResult",
    "ModelRegistryPort",
    "Observation",
    "RampStep",
    "RollbackAction",
    "RollbackDecision",
    "RollbackPolicy",
    "StatisticalAnalyzer",
    "TrafficAllocationStrategy",
    "Variant",
]
