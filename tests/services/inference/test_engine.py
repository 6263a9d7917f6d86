"""Routing and serving of predictions, over the real A/B engine on both databases."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry
from sklearn.linear_model import LogisticRegression

from synapsenet.core.db import Database
from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.exposures import ExposureLog
from synapsenet.services.abtesting.models import (
    Experiment,
    ExperimentSpec,
    MetricDefinition,
    MetricKind,
    Variant,
)
from synapsenet.services.abtesting.routing import Assignment
from synapsenet.services.explainability.loader import InMemoryModelLoader, LoadedModel
from synapsenet.services.explainability.models import Explanation, ExplanationType
from synapsenet.services.inference import InferenceEngine

FEATURES = ("a", "b", "c")


class StaticModels:
    """Served models from an in-memory loader, with a fixed production version per model."""

    def __init__(self, loader: InMemoryModelLoader, production: dict[str, str]) -> None:
        self.loader = loader
        self.production = production
        self.loads: list[tuple[str, str]] = []

    def production_version(self, name: str) -> str:
        if name not in self.production:
            raise NotFoundError(f"model {name!r} has no version in production")
        return self.production[name]

    def load(self, name: str, version: str) -> LoadedModel:
        self.loads.append((name, version))
        return self.loader.load(name, version)


class RecordingExplainer:
    """Explains by returning zero attributions; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, str]] = []

    def explain(
        self,
        model: str,
        version: str,
        instances: object,
        *,
        method: Literal["shap", "lime"] = "shap",
    ) -> tuple[Explanation, bool]:
        rows = np.asarray(instances, dtype=np.float64)
        self.calls.append((model, version, len(rows), method))
        n = len(rows)
        explanation = Explanation(
            type=ExplanationType.SHAP_TREE,
            values=np.zeros((n, rows.shape[1], 1)),
            base_values=np.zeros((n, 1)),
            predictions=np.zeros((n, 1)),
            feature_names=FEATURES,
        )
        return explanation, len(self.calls) > 1


def rows(n: int, seed: int = 0) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).normal(size=(n, len(FEATURES)))


def predicted(model: lgb.LGBMRegressor, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(model.predict(x), dtype=np.float64)


@pytest.fixture(scope="module")
def regressors() -> dict[str, lgb.LGBMRegressor]:
    x = rows(300, seed=1)
    y = 2.0 * x[:, 0] - x[:, 1]
    return {
        version: lgb.LGBMRegressor(n_estimators=n, num_leaves=4, verbose=-1, random_state=0).fit(
            x, y
        )
        for version, n in (("1", 5), ("2", 40))
    }


@pytest.fixture
def models(regressors: dict[str, lgb.LGBMRegressor]) -> StaticModels:
    loader = InMemoryModelLoader()
    for version, model in regressors.items():
        loader.register("fraud", version, model, feature_names=FEATURES)
    return StaticModels(loader, {"fraud": "1"})


@pytest.fixture
def ab(db: Database) -> ABTestingEngine:
    return ABTestingEngine(db, route_ttl=0.0)


@pytest.fixture
def exposures(ab: ABTestingEngine) -> ExposureLog:
    return ExposureLog(ab)


def canary(ab: ABTestingEngine, weight: str = "0.5") -> str:
    spec = ExperimentSpec(
        name="fraud-canary",
        model_name="fraud",
        variants=(
            Variant("control", "1", Decimal(1) - Decimal(weight), is_control=True),
            Variant("canary", "2", Decimal(weight)),
        ),
        metrics=(MetricDefinition("conversion", MetricKind.BINARY),),
    )
    experiment = ab.create(spec)
    ab.start(experiment.id)
    return experiment.id


def test_without_an_experiment_the_production_version_serves(
    models: StaticModels, regressors: dict[str, lgb.LGBMRegressor], ab: ABTestingEngine
) -> None:
    engine = InferenceEngine(models, router=ab)
    x = rows(5)
    prediction = engine.predict("fraud", x.tolist(), unit_id="alice", request_id="req-1")
    assert prediction.request_id == "req-1"
    assert prediction.route.model_version == "1"
    assert prediction.route.reason == "production"
    assert (prediction.route.experiment_id, prediction.route.variant) == (None, None)
    assert not prediction.route.exposure
    assert prediction.kind == "regression"
    assert prediction.labels is None
    np.testing.assert_allclose(prediction.outputs[:, 0], predicted(regressors["1"], x), rtol=1e-12)
    assert set(prediction.timings) == {"route", "load", "predict", "total"}


def test_a_running_experiment_routes_each_unit_to_its_sticky_arm(
    models: StaticModels,
    regressors: dict[str, lgb.LGBMRegressor],
    ab: ABTestingEngine,
    exposures: ExposureLog,
) -> None:
    experiment_id = canary(ab)
    engine = InferenceEngine(models, router=ab, exposures=exposures)
    x = rows(1)
    served: dict[str, int] = {"control": 0, "canary": 0}
    for i in range(60):
        unit = f"user-{i}"
        prediction = engine.predict("fraud", x.tolist(), unit_id=unit, request_id=f"r-{i}")
        expected = ab.assign(experiment_id, unit)
        assert prediction.route.variant == expected.variant
        assert prediction.route.model_version == expected.model_version
        assert prediction.route.experiment_id == experiment_id
        assert prediction.route.exposure
        served[expected.variant] += 1
        model = regressors[expected.model_version]
        np.testing.assert_allclose(prediction.outputs[:, 0], predicted(model, x), rtol=1e-12)
        # Sticky: the same unit again gets the same arm.
        again = engine.predict("fraud", x.tolist(), unit_id=unit, request_id=f"r-{i}-again")
        assert again.route.variant == expected.variant
    assert served["control"] > 10
    assert served["canary"] > 10
    exposures.flush()
    _, _, counts = ab.statistics(experiment_id)
    assert {name: count for name, (count, _) in counts.items()} == {
        "control": 2 * served["control"],
        "canary": 2 * served["canary"],
    }


def test_a_request_without_a_unit_or_with_a_pinned_version_is_no_exposure(
    models: StaticModels, ab: ABTestingEngine, exposures: ExposureLog
) -> None:
    canary(ab)
    engine = InferenceEngine(models, router=ab, exposures=exposures)
    anonymous = engine.predict("fraud", rows(1).tolist())
    assert anonymous.route.reason == "production"
    assert anonymous.route.model_version == "1"
    assert len(anonymous.request_id) == 32  # generated
    pinned = engine.predict("fraud", rows(1).tolist(), unit_id="alice", version="2")
    assert (pinned.route.reason, pinned.route.model_version) == ("pinned", "2")
    assert not pinned.route.exposure
    assert exposures.pending == 0


def test_the_running_experiment_is_cached_and_a_rollback_sends_units_to_the_control(
    models: StaticModels, ab: ABTestingEngine, db: Database
) -> None:
    experiment_id = canary(ab, weight="1")  # every unit in the canary arm
    calls: list[str] = []

    class CountingRouter:
        @property
        def routing_generation(self) -> int:
            return ab.routing_generation

        def running_for_model(self, model_name: str) -> Experiment | None:
            calls.append(model_name)
            return ab.running_for_model(model_name)

        def assign(self, experiment_id: str, unit_id: str) -> Assignment:
            return ab.assign(experiment_id, unit_id)

    engine = InferenceEngine(models, router=CountingRouter(), experiment_ttl=3600)
    assert engine.predict("fraud", rows(1).tolist(), unit_id="u").route.variant == "canary"
    assert engine.predict("fraud", rows(1).tolist(), unit_id="u").route.variant == "canary"
    assert calls == ["fraud"]
    # Rolled back by another process: the cached experiment is stale, but the A/B router
    # answers the control for it.
    ABTestingEngine(db).rollback(experiment_id, reason="error rate", evidence={})
    after = engine.predict("fraud", rows(1).tolist(), unit_id="u")
    assert (after.route.variant, after.route.model_version) == ("control", "1")
    assert not after.route.exposure
    assert calls == ["fraud"]
    engine.forget("fraud")
    assert engine.predict("fraud", rows(1).tolist(), unit_id="u").route.reason == "production"
    assert calls == ["fraud", "fraud"]
    engine.forget()
    engine.predict("fraud", rows(1).tolist(), unit_id="u")
    assert calls == ["fraud", "fraud", "fraud"]


def test_an_experiment_started_in_this_process_routes_at_once(
    models: StaticModels, ab: ABTestingEngine
) -> None:
    engine = InferenceEngine(models, router=ab, experiment_ttl=3600)
    assert engine.predict("fraud", rows(1).tolist(), unit_id="u").route.reason == "production"
    experiment_id = canary(ab, weight="1")
    assert engine.predict("fraud", rows(1).tolist(), unit_id="u").route.variant == "canary"
    ab.stop(experiment_id, reason="done")
    assert engine.predict("fraud", rows(1).tolist(), unit_id="u").route.reason == "production"


def test_a_classifier_answers_probabilities_and_labels(ab: ABTestingEngine) -> None:
    x = rows(200, seed=3)
    y = np.where(x[:, 0] + x[:, 1] > 0, "approve", "deny")
    model = LogisticRegression().fit(x, y)
    loader = InMemoryModelLoader()
    loader.register("credit", "7", model, feature_names=FEATURES)
    engine = InferenceEngine(StaticModels(loader, {"credit": "7"}), router=ab)
    batch = rows(10, seed=4)
    records = [dict(zip(reversed(FEATURES), reversed(row), strict=True)) for row in batch.tolist()]
    prediction = engine.predict("credit", records)
    assert prediction.kind == "classification"
    assert prediction.output_names == ("approve", "deny")
    np.testing.assert_allclose(prediction.outputs, model.predict_proba(batch), rtol=1e-12)
    assert prediction.labels == list(model.predict(batch))


def test_explanations_are_asked_for_the_version_that_served(
    models: StaticModels, ab: ABTestingEngine, exposures: ExposureLog
) -> None:
    experiment_id = canary(ab, weight="1")
    explainer = RecordingExplainer()
    engine = InferenceEngine(models, router=ab, exposures=exposures, explainer=explainer)
    first = engine.predict("fraud", rows(2).tolist(), unit_id="u", explain=True)
    second = engine.predict(
        "fraud", rows(2).tolist(), unit_id="u", explain=True, explain_method="lime"
    )
    assert explainer.calls == [("fraud", "2", 2, "shap"), ("fraud", "2", 2, "lime")]
    assert first.explanation is not None
    assert first.explanation_cached is False
    assert second.explanation_cached is True
    assert "explain" in first.timings
    exposures.flush()
    _, _, counts = ab.statistics(experiment_id)
    assert counts["canary"][0] == 2


def test_a_refused_explanation_fails_the_request_before_any_exposure(
    models: StaticModels, ab: ABTestingEngine, exposures: ExposureLog
) -> None:
    canary(ab, weight="1")
    without = InferenceEngine(models, router=ab, exposures=exposures)
    with pytest.raises(InvalidError, match="not available") as caught:
        without.predict("fraud", rows(1).tolist(), unit_id="u", explain=True)
    assert caught.value.field == "explain"
    limited = InferenceEngine(
        models, router=ab, exposures=exposures, explainer=RecordingExplainer(), max_explained=2
    )
    with pytest.raises(InvalidError, match="at most 2 rows"):
        limited.predict("fraud", rows(3).tolist(), unit_id="u", explain=True)
    assert exposures.pending == 0


def test_bad_requests_are_refused_by_name(models: StaticModels) -> None:
    engine = InferenceEngine(models, max_instances=4)
    with pytest.raises(InvalidError, match="at most 4") as caught:
        engine.predict("fraud", rows(5).tolist())
    assert caught.value.field == "instances"
    with pytest.raises(InvalidError) as caught:
        engine.predict("fraud", [[1.0, 2.0]])
    assert caught.value.field == "instances"
    with pytest.raises(NotFoundError, match="no version in production"):
        engine.predict("churn", rows(1).tolist())


def test_loaded_models_are_adapted_once_and_requests_are_measured(
    models: StaticModels,
) -> None:
    registry = CollectorRegistry()
    engine = InferenceEngine(models, registry=registry)
    for _ in range(3):
        engine.predict("fraud", rows(4).tolist())
    assert len(engine._functions) == 1
    served = registry.get_sample_value(
        "synapsenet_predictions_total", {"model": "fraud", "version": "1", "route": "production"}
    )
    assert served == 12.0
    count = registry.get_sample_value(
        "synapsenet_predict_duration_seconds_count", {"model": "fraud", "step": "total"}
    )
    assert count == 3.0
    # A second engine on the same registry shares the metrics instead of failing.
    InferenceEngine(models, registry=registry).predict("fraud", rows(1).tolist())
    assert (
        registry.get_sample_value(
            "synapsenet_predict_duration_seconds_count", {"model": "fraud", "step": "total"}
        )
        == 4.0
    )


def test_the_adapted_model_cache_is_bounded(
    models: StaticModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("synapsenet.services.inference.engine._FUNCTION_CACHE_SIZE", 1)
    engine = InferenceEngine(models)
    engine.predict("fraud", rows(1).tolist(), version="1")
    engine.predict("fraud", rows(1).tolist(), version="2")
    assert [key[:2] for key in engine._functions] == [("fraud", "2")]
