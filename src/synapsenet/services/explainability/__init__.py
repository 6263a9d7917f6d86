"""Model explainability: SHAP and LIME explanations, global importance, and a cache.

The explainers, the aggregator and the cache are plain Python; :class:`ExplanationService`
hosts them behind ``/v1/explanations`` with models from a :class:`ModelLoader`.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapsenet.services.explainability.aggregation import FeatureImportanceAggregator
    from synapsenet.services.explainability.cache import ExplanationCache
    from synapsenet.services.explainability.lime_explainer import LIMEExplainer
    from synapsenet.services.explainability.loader import (
        FeatureType,
        FileModelLoader,
        InMemoryModelLoader,
        LoadedModel,
        ModelLoader,
    )
    from synapsenet.services.explainability.models import (
        AggregationMethod,
        Explanation,
        ExplanationType,
        GlobalImportance,
        InteractionReport,
        StabilityReport,
    )
    from synapsenet.services.explainability.service import ExplanationService
    from synapsenet.services.explainability.shap_explainer import SHAPExplainer

# Where each exported name lives. They load on first use, so starting the API server does
# not pay for shap, scikit-image and matplotlib until an explanation is asked for.
_EXPORTS = {
    "FeatureImportanceAggregator": "aggregation",
    "ExplanationCache": "cache",
    "LIMEExplainer": "lime_explainer",
    "FeatureType": "loader",
    "FileModelLoader": "loader",
    "InMemoryModelLoader": "loader",
    "LoadedModel": "loader",
    "ModelLoader": "loader",
    "AggregationMethod": "models",
    "Explanation": "models",
    "ExplanationType": "models",
    "GlobalImportance": "models",
    "InteractionReport": "models",
    "StabilityReport": "models",
    "ExplanationService": "service",
    "SHAPExplainer": "shap_explainer",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "AggregationMethod",
    "Explanation",
    "ExplanationCache",
    "ExplanationService",
    "ExplanationType",
    "FeatureImportanceAggregator",
    "FeatureType",
    "FileModelLoader",
    "GlobalImportance",
    "InMemoryModelLoader",
    "InteractionReport",
    "LIMEExplainer",
    "LoadedModel",
    "ModelLoader",
    "SHAPExplainer",
    "StabilityReport",
]
