"""ExplanationService and the model loaders, without HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from synapsenet.core.jobs import JobStatus
from synapsenet.core.platform import Platform
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.explainability import (
    ExplanationService,
    FileModelLoader,
    InMemoryModelLoader,
)
from synapsenet.services.explainability.loader import FeatureType, InputKind
from synapsenet.services.explainability.tabular_requests import (
    TreeExplainerPool,
    as_matrix,
    explain_tabular,
)
from tests.services.explainability.service_fixtures import FEATURES, regressor, training_rows


class FakeTables:
    """A dataset source holding one table (with a label column the model does not take)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def load_table(self, ref: str, *, path: str | None = None) -> pa.Table:
        if ref != "credit@v1":
            raise NotFoundError(f"no dataset version {ref!r}")
        return self.table


@pytest.fixture
def loader() -> InMemoryModelLoader:
    models = InMemoryModelLoader()
    models.register(
        "credit", "1", regressor(), feature_names=FEATURES, background=training_rows()[:50]
    )
    return models


@pytest.fixture
def service(platform: Platform, loader: InMemoryModelLoader) -> ExplanationService:
    rows = training_rows()[:40]
    columns = {n: rows[:, i].tolist() for i, n in enumerate(FEATURES)}
    table = pa.table({**columns, "label": rows[:, 0].tolist()})
    return ExplanationService(platform, loader, datasets=FakeTables(table), chunk_rows=16)


def write_lightgbm_model(root: Path, name: str = "credit", version: str = "2") -> Path:
    directory = root / name / version
    directory.mkdir(parents=True)
    (directory / "model.txt").write_text(regressor().booster_.model_to_string())
    np.save(directory / "background.npy", training_rows()[:20], allow_pickle=False)
    meta = {
        "feature_names": list(FEATURES),
        "feature_types": ["numeric", "numeric", "numeric", "categorical"],
        "background": "background.npy",
    }
    (directory / "meta.json").write_text(json.dumps(meta))
    return directory


def test_file_loader_reads_native_lightgbm_and_metadata(tmp_path: Path) -> None:
    write_lightgbm_model(tmp_path)
    loader = FileModelLoader(tmp_path)
    loaded = loader.load("credit", "2")
    assert loaded.feature_names == FEATURES
    assert loaded.feature_types[-1] is FeatureType.CATEGORICAL
    assert loaded.categorical_features == (3,)
    assert loaded.background is not None
    assert loaded.background.shape == (20, 4)
    assert loader.load("credit", "2") is loaded  # served from the LRU
    with pytest.raises(NotFoundError):
        loader.load("credit", "3")
    with pytest.raises(InvalidError, match="name"):
        loader.load("..", "2")


def test_file_loaded_model_explains_like_the_fitted_one(platform: Platform, tmp_path: Path) -> None:
    write_lightgbm_model(tmp_path)
    from_file = ExplanationService(platform, FileModelLoader(tmp_path))
    explanation, _ = from_file.explain("credit", "2", training_rows()[:3])
    memory = InMemoryModelLoader()
    memory.register(
        "credit", "2", regressor(), feature_names=FEATURES, background=training_rows()[:20]
    )
    direct = from_file._compute(memory.load("credit", "2"), training_rows()[:3], "shap", "auto", {})
    np.testing.assert_allclose(explanation.values, direct.values, atol=1e-6)


def test_reregistered_model_is_not_served_from_the_cache(
    service: ExplanationService, loader: InMemoryModelLoader
) -> None:
    rows = training_rows()[:2]
    _, cached = service.explain("credit", "1", rows)
    assert not cached
    assert service.explain("credit", "1", rows)[1]
    loader.register("credit", "1", regressor(), feature_names=FEATURES)
    _, cached = service.explain("credit", "1", rows)
    assert not cached


def test_batch_reports_progress_per_chunk(service: ExplanationService) -> None:
    reports: list[tuple[float, str]] = []
    loaded = service.loader.load("credit", "1")
    result = service._run_batch(
        "job-1",
        loaded,
        training_rows()[:40],
        "shap",
        "auto",
        {},
        lambda progress, message: reports.append((progress, message)),
    )
    assert [message for _, message in reports] == [
        "explained 16 of 40 rows",
        "explained 32 of 40 rows",
        "explained 40 of 40 rows",
    ]
    assert [p for p, _ in reports] == sorted(p for p, _ in reports)
    assert result["n_instances"] == 40
    assert service.platform.store.exists("explanations/job-1.bin")


def test_batch_from_a_dataset_version_drops_extra_columns(service: ExplanationService) -> None:
    job = service.submit_batch("credit", "1", dataset_ref="credit@v1")
    done = service.platform.jobs.wait(job.id, timeout=60)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert service.batch_explanation(job.id).n_instances == 40
    np.testing.assert_array_equal(service.batch_inputs(job.id), training_rows()[:40])
    importance = service.global_importance(job.id, "max_abs")
    assert importance.ranking()[0] == "age"


def test_batch_of_an_unknown_dataset_fails_the_job(service: ExplanationService) -> None:
    job = service.submit_batch("credit", "1", dataset_ref="nope@v1")
    done = service.platform.jobs.wait(job.id, timeout=60)
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert "nope@v1" in done.error
    with pytest.raises(ConflictError, match="failed"):
        service.global_importance(job.id)


def test_batch_checks_model_and_rows_before_queueing(service: ExplanationService) -> None:
    with pytest.raises(NotFoundError):
        service.submit_batch("credit", "9", instances=[[0.0] * 4])
    with pytest.raises(InvalidError, match="4 features"):
        service.submit_batch("credit", "1", instances=[[0.0] * 3])
    with pytest.raises(InvalidError, match="exactly one"):
        service.submit_batch("credit", "1")


def test_lime_needs_background(platform: Platform) -> None:
    loader = InMemoryModelLoader()
    loader.register("bare", "1", regressor(), feature_names=FEATURES)
    service = ExplanationService(platform, loader)
    with pytest.raises(InvalidError, match="background"):
        service.explain("bare", "1", training_rows()[:1], method="lime")


def test_sync_row_limit(platform: Platform, loader: InMemoryModelLoader) -> None:
    service = ExplanationService(platform, loader, max_rows=5)
    with pytest.raises(InvalidError, match="at most 5"):
        service.explain("credit", "1", np.zeros((6, 4)))


def test_records_need_exactly_the_model_features() -> None:
    with pytest.raises(InvalidError, match="missing \\['b'\\], unknown \\['z'\\]"):
        as_matrix([{"a": 1.0, "z": 2.0}], ("a", "b"))
    matrix = as_matrix([{"b": 2.0, "a": None}], ("a", "b"))
    assert np.isnan(matrix[0, 0])
    assert matrix[0, 1] == 2.0


def test_services_on_one_platform_share_cache_and_metrics(
    platform: Platform, loader: InMemoryModelLoader
) -> None:
    first = ExplanationService(platform, loader)
    second = ExplanationService(platform, loader)
    assert first.cache is second.cache
    first.explain("credit", "1", training_rows()[:1])
    assert second.explain("credit", "1", training_rows()[:1])[1]


def test_text_and_image_models_are_prediction_functions_with_a_mode() -> None:
    loader = InMemoryModelLoader()
    text = loader.register_text("reviews", "1", lambda texts: [0.5] * len(texts), mode="regression")
    assert (text.input_kind, text.mode, text.feature_names) == (InputKind.TEXT, "regression", ())
    image = loader.register_image("lamps", "1", lambda batch: batch.mean(axis=(1, 2)))
    assert (image.input_kind, image.mode, image.output_names) == (
        InputKind.IMAGE,
        "classification",
        None,
    )
    assert loader.load("lamps", "1") is image
    assert loader.register("credit", "1", regressor(), feature_names=FEATURES).mode is None
    with pytest.raises(InvalidError, match="must be a callable prediction function") as caught:
        loader.register_text("reviews", "2", "not a model")  # type: ignore[arg-type]
    assert caught.value.field == "model"
    with pytest.raises(InvalidError, match="'mode' of image models must be one of") as caught:
        loader.register_image("lamps", "2", np.mean, mode="ranking")
    assert caught.value.field == "mode"
    with pytest.raises(InvalidError, match="model name"):
        loader.register_text("../etc", "1", len)


def test_tree_explainers_are_kept_per_model_version_and_settings(
    loader: InMemoryModelLoader,
) -> None:
    pool = TreeExplainerPool(max_size=2)
    loaded = loader.load("credit", "1")
    first = pool.shap(loaded, "auto", {})
    assert first.tree_ is not None
    assert pool.shap(loaded, "auto", {}) is first
    checked = pool.shap(loaded, "auto", {"native_check": "all"})
    assert checked is not first
    assert len(pool) == 2
    # A re-registered version has a new content hash, so it never gets the old explainer.
    again = loader.register(
        "credit", "1", regressor(), feature_names=FEATURES, background=training_rows()[:50]
    )
    assert pool.shap(again, "auto", {}) is not first
    assert len(pool) == 2  # the least recently used one went
    assert pool.shap(loaded, "auto", {"native_check": "all"}) is checked
    assert pool.shap(loaded, "auto", {}) is not first
    # Model-agnostic explainers are built per request, never kept.
    assert pool.shap(loaded, "kernel", {"n_samples": 50}).tree_ is None
    assert len(pool) == 2
    with pytest.raises(InvalidError, match="native_check"):
        pool.shap(loaded, "auto", {"native_check": "never"})


def test_tree_explainers_are_evicted_when_their_tables_exceed_the_pools_budget(
    loader: InMemoryModelLoader,
) -> None:
    loaded = loader.load("credit", "1")
    rows = training_rows()[:2]
    path: dict[str, Any] = {"feature_perturbation": "tree_path_dependent"}  # tabulated
    unbounded = TreeExplainerPool()
    explain_tabular(loaded, rows, "shap", "auto", path, unbounded)
    one = unbounded.table_bytes
    assert one > 0  # the tabulated TreeSHAP built its tables
    pool = TreeExplainerPool(max_table_bytes=one)
    first = pool.shap(loaded, "auto", path)
    first.explain(rows)
    assert pool.table_bytes == one
    second = pool.shap(loaded, "auto", path | {"native_check": "off"})
    assert len(pool) == 2  # the newcomer has built nothing yet: within the budget
    second.explain(rows)
    assert pool.table_bytes == 2 * one
    third = pool.shap(loaded, "auto", path | {"native_check": "all"})
    assert len(pool) == 2  # the least recently used one went: two tables were over budget
    assert pool.shap(loaded, "auto", path | {"native_check": "off"}) is second
    assert pool.shap(loaded, "auto", path | {"native_check": "all"}) is third
    assert pool.shap(loaded, "auto", path) is not first
    # A single explainer is kept whatever its tables take.
    tiny = TreeExplainerPool(max_table_bytes=0)
    kept = tiny.shap(loaded, "auto", path)
    kept.explain(rows)
    assert tiny.shap(loaded, "auto", path) is kept


def test_an_empty_pool_is_filled_by_the_first_tree_explanation(
    loader: InMemoryModelLoader,
) -> None:
    pool = TreeExplainerPool()
    loaded = loader.load("credit", "1")
    first = explain_tabular(loaded, training_rows()[:1], "shap", "auto", {}, pool)
    assert len(pool) == 1
    second = explain_tabular(loaded, training_rows()[1:2], "shap", "auto", {}, pool)
    assert len(pool) == 1
    assert first.values.shape == second.values.shape == (1, len(FEATURES), 1)
