"""RegistryModelLoader: verified, safe loads by flavour; LRU; single flight."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest
from sqlalchemy import update

from synapsenet.config import Settings
from synapsenet.core.db import Database
from synapsenet.core.platform import Platform
from synapsenet.core.storage import LocalObjectStore
from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.explainability.loader import FeatureType, LoadedModel
from synapsenet.services.explainability.service import ExplanationService
from synapsenet.services.registry import (
    CorruptArtifactError,
    ModelFlavor,
    ModelRegistry,
    ModelSignature,
    OutputKind,
    RegistryModelLoader,
    UntrustedArtifactError,
)
from synapsenet.services.registry.artifacts import artifact_key
from synapsenet.services.registry.loader import loaded_content_hash
from synapsenet.services.registry.store import ModelVersionRecord
from tests.services.registry.conftest import (
    FEATURES,
    lgbm_regressor,
    logistic_regression,
    training_data,
    xgb_classifier,
)


class SlowRegistry(ModelRegistry):
    """Counts artifact reads and makes each one slow, so concurrent loads overlap."""

    def __init__(self, db: Database, store: LocalObjectStore) -> None:
        super().__init__(db, store)
        self.reads = 0

    def load_artifact(self, name: str, version: str) -> bytes:
        self.reads += 1
        time.sleep(0.2)
        return super().load_artifact(name, version)


def test_sklearn_versions_load_from_skops_and_predict_like_the_original(
    registry: ModelRegistry,
) -> None:
    model = logistic_regression()
    x, _ = training_data(30, seed=1)
    registry.log_model("churn", model, background=x.to_numpy()[:5])
    loaded = RegistryModelLoader(registry).load("churn", "1")
    assert isinstance(loaded, LoadedModel)
    assert (loaded.name, loaded.version, loaded.feature_names) == ("churn", "1", FEATURES)
    assert loaded.feature_types == (FeatureType.NUMERIC,) * 3
    assert loaded.output_names == ("0", "1")
    assert loaded.model is not model
    np.testing.assert_allclose(
        loaded.model.predict_proba(x),  # type: ignore[attr-defined]
        model.predict_proba(x),  # type: ignore[attr-defined]
    )
    assert loaded.background is not None
    np.testing.assert_array_equal(loaded.background, x.to_numpy()[:5])


def test_xgboost_wrappers_come_back_as_wrappers(registry: ModelRegistry) -> None:
    import xgboost

    model = xgb_classifier()
    x, _ = training_data(30, seed=2)
    version = registry.log_model("fraud", model)
    assert version.flavor is ModelFlavor.XGBOOST
    assert version.signature == ModelSignature.numeric(FEATURES, OutputKind.PROBABILITY, ("0", "1"))
    loaded = RegistryModelLoader(registry).load("fraud", "1")
    assert isinstance(loaded.model, xgboost.XGBClassifier)
    np.testing.assert_allclose(
        loaded.model.predict_proba(x),
        model.predict_proba(x),  # type: ignore[attr-defined]
        rtol=1e-6,
    )


def test_native_boosters_round_trip(registry: ModelRegistry) -> None:
    import lightgbm
    import xgboost

    x, y = training_data(100, seed=3)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 2},
        xgboost.DMatrix(x, label=y),
        num_boost_round=4,
    )
    xgb_version = registry.log_model("booster", booster)
    assert xgb_version.signature.feature_names == FEATURES
    assert xgb_version.signature.output_kind is OutputKind.PROBABILITY
    regressor = lgbm_regressor()
    lgb_version = registry.log_model("demand", regressor)
    loader = RegistryModelLoader(registry)
    loaded_xgb = loader.load("booster", xgb_version.version).model
    assert isinstance(loaded_xgb, xgboost.Booster)
    np.testing.assert_allclose(
        loaded_xgb.predict(xgboost.DMatrix(x)), booster.predict(xgboost.DMatrix(x)), rtol=1e-6
    )
    loaded_lgb = loader.load("demand", lgb_version.version).model
    assert isinstance(loaded_lgb, lightgbm.Booster)
    np.testing.assert_allclose(
        np.asarray(loaded_lgb.predict(x.to_numpy())),
        regressor.predict(x),  # type: ignore[attr-defined]
        rtol=1e-9,
    )


def test_a_tampered_artifact_is_never_deserialised(
    registry: ModelRegistry, store: LocalObjectStore
) -> None:
    version = registry.log_model("churn", logistic_regression())
    key = artifact_key(version.artifact_hash)
    original = store.get(key)
    store.put(key, original.replace(b"PK", b"PX", 1))
    loader = RegistryModelLoader(registry)
    with pytest.raises(CorruptArtifactError):
        loader.load("churn", "1")
    assert loader.cached() == []
    store.put(key, original)
    assert loader.load("churn", "1").version == "1"
    assert loader.loads == 1


def test_a_pickle_not_marked_trusted_is_not_loaded(registry: ModelRegistry, db: Database) -> None:
    registry.create_model("custom")
    signature = ModelSignature.numeric(("a",), OutputKind.REGRESSION)
    registry.register_version(
        "custom",
        pickle.dumps({"weights": [1.0]}),
        flavor=ModelFlavor.PICKLE,
        signature=signature,
        trusted=True,
    )
    loader = RegistryModelLoader(registry)
    assert loader.load("custom", "1").model == {"weights": [1.0]}
    # A row altered behind the registry's back: the loader still refuses to unpickle.
    with db.transaction() as session:
        session.execute(update(ModelVersionRecord).values(trusted=False))
    with pytest.raises(UntrustedArtifactError, match="not registered as trusted"):
        RegistryModelLoader(registry).load("custom", "1")


def test_the_cache_keeps_the_most_recently_used_versions(registry: ModelRegistry) -> None:
    model = lgbm_regressor()
    for _ in range(3):
        registry.log_model("demand", model)
    loader = RegistryModelLoader(registry, capacity=2)
    first = loader.load("demand", "1")
    loader.load("demand", "2")
    assert loader.load("demand", "v1") is first
    loader.load("demand", "3")
    assert loader.cached() == [("demand", "1"), ("demand", "3")]
    assert loader.loads == 3
    assert loader.load("demand", "2") is not None
    assert loader.loads == 4
    with pytest.raises(NotFoundError):
        loader.load("demand", "9")
    with pytest.raises(InvalidError) as caught:
        RegistryModelLoader(registry, capacity=0)
    assert caught.value.field == "capacity"


def test_concurrent_loads_of_one_version_read_it_once(
    db: Database, store: LocalObjectStore
) -> None:
    registry = SlowRegistry(db, store)
    registry.log_model("churn", logistic_regression())
    registry.log_model("broken", logistic_regression())
    store.put(artifact_key(registry.get_version("broken", "1").artifact_hash), b"tampered")
    loader = RegistryModelLoader(registry)
    results: list[object] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(name: str) -> None:
        barrier.wait()
        try:
            results.append(loader.load(name, "1"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=("churn",)) for _ in range(4)]
    threads += [threading.Thread(target=work, args=("broken",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4
    assert all(r is results[0] for r in results)
    assert len(errors) == 4
    assert all(isinstance(e, CorruptArtifactError) for e in errors)
    assert registry.reads == 2  # one read per version, however many callers
    assert loader.cached() == [("churn", "1")]


def test_load_production_follows_promotions(registry: ModelRegistry) -> None:
    model = logistic_regression()
    registry.log_model("churn", model)
    registry.log_model("churn", model)
    loader = RegistryModelLoader(registry)
    with pytest.raises(NotFoundError, match="no production version"):
        loader.load_production("churn")
    registry.promote("churn", "1", reason="ship")
    assert loader.load_production("churn").version == "1"
    registry.promote("churn", "2", reason="better")
    assert loader.load_production("churn").version == "2"


def test_the_content_hash_covers_the_artifact_background_and_signature(
    registry: ModelRegistry,
) -> None:
    model = logistic_regression()
    x, _ = training_data(10)
    plain = registry.log_model("churn", model)
    with_background = registry.log_model("churn", model, background=x.to_numpy())
    relabelled = registry.log_model(
        "churn",
        model,
        signature=ModelSignature.numeric(FEATURES, OutputKind.PROBABILITY, ("stay", "leave")),
    )
    hashes = {loaded_content_hash(v) for v in (plain, with_background, relabelled)}
    assert len(hashes) == 3
    loaded = RegistryModelLoader(registry).load("churn", "1")
    assert loaded.content_hash == loaded_content_hash(plain)
    assert RegistryModelLoader(registry).load("churn", "1").content_hash == loaded.content_hash


def test_the_explanation_service_explains_registered_versions(settings: Settings) -> None:
    platform = Platform.open(settings)
    try:
        registry = ModelRegistry(platform.db, platform.store)
        x, _ = training_data(40, seed=4)
        registry.log_model("fraud", xgb_classifier(), background=x.to_numpy()[:20])
        service = ExplanationService(platform, RegistryModelLoader(registry))
        explanation, cached = service.explain("fraud", "1", x.to_numpy()[:3].tolist())
        assert not cached
        assert explanation.feature_names == FEATURES
        values = np.asarray(explanation.values)
        base = np.asarray(explanation.base_values)
        predictions = np.asarray(explanation.predictions)
        # SHAP efficiency: base value plus attributions give the model's output.
        np.testing.assert_allclose(
            base.reshape(3, -1) + values.sum(axis=1).reshape(3, -1),
            predictions.reshape(3, -1),
            atol=1e-5,
        )
    finally:
        platform.close()
