"""ModelRegistry on SQLite and PostgreSQL: models, versions, artifacts and stages."""

from __future__ import annotations

import io
import json
import pickle
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select

from synapsenet.core.db import Database
from synapsenet.core.outbox import OutboxRecord
from synapsenet.core.storage import LocalObjectStore
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.registry import (
    CorruptArtifactError,
    FeatureType,
    ModelFlavor,
    ModelRegistry,
    ModelSignature,
    ModelStage,
    OutputKind,
)
from synapsenet.services.registry.artifacts import artifact_key, background_key, content_hash
from synapsenet.services.registry.flavors import UntrustedArtifactError, serialize
from tests.services.registry.conftest import (
    FEATURES,
    lgbm_regressor,
    logistic_regression,
    training_data,
)

SIGNATURE = ModelSignature.numeric(FEATURES, OutputKind.PROBABILITY, ("0", "1"))


def events(db: Database, prefix: str = "registry.") -> list[tuple[str, dict[str, object]]]:
    with db.transaction() as session:
        rows = session.execute(
            select(OutboxRecord.type, OutboxRecord.envelope).order_by(OutboxRecord.id)
        )
        return [(t, json.loads(e)["data"]) for t, e in rows if t.startswith(prefix)]


class Doubler:
    """Not a model any safe flavour knows: only a trusted pickle can hold it."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        result: np.ndarray = np.asarray(x).sum(axis=1) * 2
        return result


def test_create_model_then_conflict_on_the_same_name(registry: ModelRegistry) -> None:
    created = registry.create_model("churn", description="who leaves")
    assert (created.name, created.description, created.latest_version) == ("churn", "who leaves", 0)
    assert created.created_at.tzinfo is UTC
    with pytest.raises(ConflictError, match="'churn' exists already"):
        registry.create_model("churn")
    assert registry.get_model("churn").production_version is None
    assert [m.name for m in registry.list_models()] == ["churn"]


@pytest.mark.parametrize("bad", ["", "../x", "a b", "-lead", "x" * 129])
def test_model_names_are_checked(registry: ModelRegistry, bad: str) -> None:
    with pytest.raises(InvalidError) as caught:
        registry.create_model(bad)
    assert caught.value.field == "name"


def test_unknown_models_and_versions_are_not_found(registry: ModelRegistry) -> None:
    with pytest.raises(NotFoundError, match="no model named 'ghost'"):
        registry.get_model("ghost")
    with pytest.raises(NotFoundError, match="no model named 'ghost'"):
        registry.list_versions("ghost")
    with pytest.raises(NotFoundError, match="no model named 'ghost'"):
        registry.get_version("ghost", "1")
    with pytest.raises(NotFoundError, match="no model named 'ghost'"):
        registry.production_version("ghost")
    registry.create_model("churn")
    with pytest.raises(NotFoundError, match="has no version '7'"):
        registry.get_version("churn", "7")
    with pytest.raises(NotFoundError, match="versions are numbered"):
        registry.get_version("churn", "latest")
    with pytest.raises(NotFoundError, match="has no production version"):
        registry.production_version("churn")


def test_log_model_saves_sklearn_with_skops_and_infers_the_signature(
    registry: ModelRegistry, store: LocalObjectStore, db: Database
) -> None:
    model = logistic_regression()
    version = registry.log_model(
        "churn",
        model,
        metrics={"auc": 0.91},
        training_datasets=["customers@v3"],
        run_id="run-17",
        description="baseline",
    )
    assert (version.model_name, version.version, version.flavor) == ("churn", "1", "sklearn")
    assert version.stage is ModelStage.NONE
    assert version.signature == ModelSignature.numeric(FEATURES, OutputKind.PROBABILITY, ("0", "1"))
    assert version.metrics == {"auc": 0.91}
    assert version.training_datasets == ("customers@v3",)
    assert (version.run_id, version.description, version.trusted) == ("run-17", "baseline", False)
    data = registry.load_artifact("churn", "1")
    assert content_hash(data) == version.artifact_hash
    assert len(data) == version.artifact_size
    assert data.startswith(b"PK")  # a skops archive is a zip file, not a pickle
    assert store.exists(artifact_key(version.artifact_hash))
    assert registry.get_version("churn", "v1") == version
    assert events(db) == [
        ("registry.model.created", {"model_name": "churn", "description": ""}),
        (
            "registry.model_version.registered",
            {
                "model_name": "churn",
                "version": "1",
                "flavor": "sklearn",
                "artifact_hash": version.artifact_hash,
                "run_id": "run-17",
                "training_datasets": ["customers@v3"],
            },
        ),
    ]


def test_versions_are_numbered_per_model_and_share_identical_artifacts(
    registry: ModelRegistry,
) -> None:
    model = lgbm_regressor()
    first = registry.log_model("demand", model)
    second = registry.log_model("demand", model)
    other = registry.log_model("other", model)
    assert [v.version for v in registry.list_versions("demand")] == ["1", "2"]
    assert other.version == "1"
    assert first.artifact_hash == second.artifact_hash == other.artifact_hash
    assert first.flavor is ModelFlavor.LIGHTGBM
    assert first.signature.output_kind is OutputKind.REGRESSION
    assert registry.get_model("demand").latest_version == 2


def test_register_version_refuses_pickle_unless_trusted(registry: ModelRegistry) -> None:
    registry.create_model("custom")
    artifact = pickle.dumps(Doubler())
    signature = ModelSignature.numeric(("a", "b"), OutputKind.REGRESSION)
    with pytest.raises(InvalidError, match="trusted") as caught:
        registry.register_version(
            "custom", artifact, flavor=ModelFlavor.PICKLE, signature=signature
        )
    assert caught.value.field == "trusted"
    assert registry.list_versions("custom") == []
    version = registry.register_version(
        "custom", artifact, flavor=ModelFlavor.PICKLE, signature=signature, trusted=True
    )
    assert (version.flavor, version.trusted) == (ModelFlavor.PICKLE, True)


def test_log_model_pickles_an_unknown_model_only_when_trusted(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidError, match="safe format") as caught:
        registry.log_model("custom", Doubler(), feature_names=["a", "b"])
    assert caught.value.field == "model"
    with pytest.raises(NotFoundError):
        registry.get_model("custom")
    version = registry.log_model("custom", Doubler(), feature_names=["a", "b"], trusted=True)
    assert version.flavor is ModelFlavor.PICKLE
    assert version.signature.feature_names == ("a", "b")


def test_register_version_reads_the_artifact_before_storing_it(
    registry: ModelRegistry, store: LocalObjectStore
) -> None:
    registry.create_model("churn")
    with pytest.raises(InvalidError, match="not a readable xgboost model") as caught:
        registry.register_version(
            "churn", b"not a model", flavor=ModelFlavor.XGBOOST, signature=SIGNATURE
        )
    assert caught.value.field == "artifact"
    with pytest.raises(InvalidError, match="empty"):
        registry.register_version("churn", b"", flavor=ModelFlavor.XGBOOST, signature=SIGNATURE)
    with pytest.raises(InvalidError) as flavour:
        registry.register_version(
            "churn",
            b"x",
            flavor="onnx",  # type: ignore[arg-type]
            signature=SIGNATURE,
        )
    assert flavour.value.field == "flavor"
    assert list(store.list("registry/")) == []
    assert registry.list_versions("churn") == []


def test_register_version_checks_the_declared_hash_and_the_feature_count(
    registry: ModelRegistry,
) -> None:
    registry.create_model("churn")
    data = serialize(logistic_regression(), ModelFlavor.SKLEARN)
    with pytest.raises(InvalidError, match="not the declared") as caught:
        registry.register_version(
            "churn",
            data,
            flavor=ModelFlavor.SKLEARN,
            signature=SIGNATURE,
            expected_hash="0" * 64,
        )
    assert caught.value.field == "artifact_blake3"
    two = ModelSignature.numeric(("a", "b"), OutputKind.PROBABILITY)
    with pytest.raises(InvalidError, match="names 2 features, but the model takes 3"):
        registry.register_version("churn", data, flavor=ModelFlavor.SKLEARN, signature=two)
    version = registry.register_version(
        "churn",
        io.BytesIO(data),
        flavor=ModelFlavor.SKLEARN,
        signature=SIGNATURE,
        expected_hash=content_hash(data).upper(),
    )
    assert version.artifact_hash == content_hash(data)


def test_register_version_needs_an_existing_model(registry: ModelRegistry) -> None:
    data = serialize(logistic_regression(), ModelFlavor.SKLEARN)
    with pytest.raises(NotFoundError, match="no model named 'churn'"):
        registry.register_version("churn", data, flavor=ModelFlavor.SKLEARN, signature=SIGNATURE)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"metrics": {"auc": float("nan")}}, "metrics"),
        ({"metrics": {"auc": "high"}}, "metrics"),
        ({"metrics": {"": 1.0}}, "metrics"),
        ({"training_datasets": ["customers"]}, "training_datasets"),
        ({"training_datasets": "customers@3"}, "training_datasets"),
        ({"background": np.zeros((4, 2))}, "background"),
        ({"background": np.zeros((0, 3))}, "background"),
        ({"background": [["a", "b", "c"]]}, "background"),
    ],
)
def test_malformed_metadata_is_refused_naming_the_field(
    registry: ModelRegistry, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidError) as caught:
        registry.log_model("churn", logistic_regression(), **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    with pytest.raises(NotFoundError):
        registry.get_model("churn")


def test_a_tampered_artifact_is_refused_on_load(
    registry: ModelRegistry, store: LocalObjectStore
) -> None:
    version = registry.log_model("churn", logistic_regression())
    key = artifact_key(version.artifact_hash)
    original = store.get(key)
    store.put(key, original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(CorruptArtifactError) as caught:
        registry.load_artifact("churn", "1")
    assert caught.value.expected == version.artifact_hash
    assert "artifact of churn@1 is corrupt" in caught.value.detail
    store.delete(key)
    with pytest.raises(CorruptArtifactError, match="the object is missing"):
        registry.load_artifact("churn", "1")


def test_background_rows_round_trip_as_npy_and_are_verified(
    registry: ModelRegistry, store: LocalObjectStore
) -> None:
    x, _ = training_data(20)
    version = registry.log_model("churn", logistic_regression(), background=x.to_numpy()[:10])
    assert version.background_hash is not None
    raw = store.get(background_key(version.background_hash))
    assert raw.startswith(b"\x93NUMPY")
    np.testing.assert_array_equal(registry.load_background(version), x.to_numpy()[:10])
    store.put(background_key(version.background_hash), raw[:-8])
    with pytest.raises(CorruptArtifactError, match="background of churn@1"):
        registry.load_background(version)
    assert registry.load_background(registry.log_model("churn", logistic_regression())) is None


def test_explicit_signature_keeps_categorical_types(registry: ModelRegistry) -> None:
    signature = ModelSignature(
        FEATURES,
        (FeatureType.NUMERIC, FeatureType.NUMERIC, FeatureType.CATEGORICAL),
        OutputKind.LABEL,
        ("no", "yes"),
    )
    version = registry.log_model("churn", logistic_regression(), signature=signature)
    assert registry.get_version("churn", version.version).signature == signature


def test_promote_archives_the_previous_production_version_and_emits_events(
    registry: ModelRegistry, db: Database
) -> None:
    model = logistic_regression()
    for _ in range(3):
        registry.log_model("churn", model)
    registry.promote("churn", "1", reason="first")
    assert registry.production_version("churn").version == "1"
    registry.promote("churn", "3", reason="better auc")
    stages = {v.version: v.stage for v in registry.list_versions("churn")}
    assert stages == {"1": ModelStage.ARCHIVED, "2": ModelStage.NONE, "3": ModelStage.PRODUCTION}
    assert registry.get_model("churn").production_version == "3"
    assert [m.production_version for m in registry.list_models()] == ["3"]
    promoted = [data for kind, data in events(db) if kind == "registry.model_version.promoted"]
    assert promoted[-1] == {
        "model_name": "churn",
        "version": "3",
        "from_stage": "none",
        "to_stage": "production",
        "archived_versions": ["1"],
        "reason": "better auc",
    }
    # Promoting the production version again changes nothing and says nothing.
    before = len(events(db))
    registry.promote("churn", "3", reason="again")
    assert len(events(db)) == before


def test_demote_takes_a_version_out_of_service(registry: ModelRegistry, db: Database) -> None:
    registry.log_model("churn", logistic_regression())
    registry.promote("churn", "1", reason="ship")
    registry.demote("churn", "1", reason="guardrail breached")
    assert registry.get_version("churn", "1").stage is ModelStage.ARCHIVED
    with pytest.raises(NotFoundError, match="has no production version"):
        registry.production_version("churn")
    kind, data = events(db)[-1]
    assert kind == "registry.model_version.demoted"
    assert (data["from_stage"], data["to_stage"], data["reason"]) == (
        "production",
        "archived",
        "guardrail breached",
    )


def test_transition_moves_between_stages_and_never_back_to_none(
    registry: ModelRegistry, db: Database
) -> None:
    registry.log_model("churn", logistic_regression())
    clock_before = registry.get_version("churn", "1").stage_changed_at
    staged = registry.transition("churn", "1", ModelStage.STAGING, reason="review")
    assert staged.stage is ModelStage.STAGING
    assert staged.stage_changed_at is not None
    assert clock_before is not None
    assert staged.stage_changed_at >= clock_before
    assert events(db)[-1][0] == "registry.model_version.stage_changed"
    with pytest.raises(ConflictError, match="cannot go back to none"):
        registry.transition("churn", "1", ModelStage.NONE)
    with pytest.raises(InvalidError) as caught:
        registry.transition("churn", "1", "live")  # type: ignore[arg-type]
    assert caught.value.field == "stage"
    assert registry.transition("churn", "1", ModelStage.PRODUCTION).stage is ModelStage.PRODUCTION
    with pytest.raises(NotFoundError):
        registry.promote("churn", "9", reason="no such version")


def test_the_clock_stamps_versions(db: Database, store: LocalObjectStore) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    registry = ModelRegistry(db, store, clock=lambda: moment)
    version = registry.log_model("churn", logistic_regression())
    assert version.created_at == moment
    assert registry.get_version("churn", "1").created_at == moment


def test_a_skops_archive_with_foreign_types_is_refused(registry: ModelRegistry) -> None:
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = training_data()

    pipeline = make_pipeline(FunctionTransformer(_shift), LogisticRegression()).fit(x, y)
    with pytest.raises(UntrustedArtifactError, match="outside scikit-learn") as caught:
        registry.log_model("churn", pipeline)
    assert any("_shift" in t for t in caught.value.extra["types"])
    registry.create_model("upload")
    data = skops.io.dumps(pipeline)
    with pytest.raises(UntrustedArtifactError):
        registry.register_version("upload", data, flavor=ModelFlavor.SKLEARN, signature=SIGNATURE)
    with pytest.raises(UntrustedArtifactError, match="not a readable skops archive"):
        registry.register_version(
            "upload", b"PK\x03\x04 junk", flavor=ModelFlavor.SKLEARN, signature=SIGNATURE
        )


def _shift(x: np.ndarray) -> np.ndarray:
    return np.asarray(x) + 1.0
