"""ExplainabilityClient: ``/v1/explanations`` over HTTP, typed (used by the CLI and the SDK).

Errors come back as the :mod:`synapsenet.errors` class the server raised (404
``NotFoundError``, 409 ``ConflictError``, 422 ``InvalidError`` with its ``field``)::

    with ExplainabilityClient("http://127.0.0.1:8000", api_key=token) as client:
        explanation = client.explain("churn", "3", [[35.0, 12.0, 1.0]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

from synapsenet.core.client import ServiceClient
from synapsenet.services.explainability.schemas import (
    CacheInvalidationPublic,
    ExplanationPublic,
    GlobalImportancePublic,
    ImageExplanationPublic,
    JobPublic,
    TextExplanationPublic,
)

API_PREFIX = "/v1/explanations"

Rows = Sequence[Sequence[float | None]] | Sequence[Mapping[str, float | None]]


def _rows(instances: Rows) -> list[Any]:
    return [dict(row) if isinstance(row, Mapping) else list(row) for row in instances]


class ExplainabilityClient(ServiceClient):
    """Typed client of ``/v1/explanations`` (viewer key for reads, operator for POSTs)."""

    @staticmethod
    def _job(job_id: str, action: str = "") -> str:
        path = f"{API_PREFIX}/jobs/{quote(job_id, safe='')}"
        return f"{path}/{action}" if action else path

    def explain(
        self,
        model: str,
        version: str,
        instances: Rows,
        *,
        method: Literal["shap", "lime"] = "shap",
        algorithm: str = "auto",
        parameters: Mapping[str, Any] | None = None,
    ) -> ExplanationPublic:
        """Explain up to 1,000 rows now."""
        body = {
            "model": model,
            "version": version,
            "instances": _rows(instances),
            "method": method,
            "algorithm": algorithm,
            "parameters": dict(parameters or {}),
        }
        return ExplanationPublic.model_validate(self.post_json(API_PREFIX, body))

    def explain_text(
        self,
        model: str,
        version: str,
        text: str,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> TextExplanationPublic:
        """LIME weights of the words of one text (a text model)."""
        body = {
            "model": model,
            "version": version,
            "text": text,
            "parameters": dict(parameters or {}),
        }
        return TextExplanationPublic.model_validate(self.post_json(f"{API_PREFIX}/text", body))

    def explain_image(
        self,
        model: str,
        version: str,
        image: Any,
        *,
        parameters: Mapping[str, Any] | None = None,
    ) -> ImageExplanationPublic:
        """LIME weights of the superpixels of one image.

        ``image`` is ``(H, W)`` or ``(H, W, C)`` numbers: nested lists, or anything with
        ``tolist()`` such as a numpy array.
        """
        pixels = image.tolist() if hasattr(image, "tolist") else image
        body = {
            "model": model,
            "version": version,
            "image": pixels,
            "parameters": dict(parameters or {}),
        }
        return ImageExplanationPublic.model_validate(self.post_json(f"{API_PREFIX}/image", body))

    def invalidate_cache(self, model: str, version: str) -> CacheInvalidationPublic:
        """Retire every cached explanation of a model version (operator key)."""
        path = f"{API_PREFIX}/cache/{quote(model, safe='')}/{quote(version, safe='')}"
        return CacheInvalidationPublic.model_validate(self.delete(path))

    def submit_job(
        self,
        model: str,
        version: str,
        *,
        instances: Rows | None = None,
        dataset_ref: str | None = None,
        method: Literal["shap", "lime"] = "shap",
        algorithm: str = "auto",
        parameters: Mapping[str, Any] | None = None,
    ) -> JobPublic:
        """Queue a batch explanation of inline rows or of a dataset version."""
        body: dict[str, Any] = {
            "model": model,
            "version": version,
            "method": method,
            "algorithm": algorithm,
            "parameters": dict(parameters or {}),
        }
        if instances is not None:
            body["instances"] = _rows(instances)
        if dataset_ref is not None:
            body["dataset_ref"] = dataset_ref
        return JobPublic.model_validate(self.post_json(f"{API_PREFIX}/jobs", body))

    def get_job(self, job_id: str) -> JobPublic:
        """A batch job's status and progress."""
        return JobPublic.model_validate(self.get_json(self._job(job_id)))

    def job_result(self, job_id: str) -> ExplanationPublic:
        """The explanation a succeeded job computed."""
        return ExplanationPublic.model_validate(self.get_json(self._job(job_id, "result")))

    def importance(
        self, job_id: str, *, method: str = "mean_abs", output: int = 0
    ) -> GlobalImportancePublic:
        """Global importance of a job's explanations, with bootstrap intervals."""
        data = self.get_json(
            self._job(job_id, "importance"), params={"method": method, "output": output}
        )
        return GlobalImportancePublic.model_validate(data)

    def plot(
        self,
        job_id: str,
        kind: Literal["importance", "beeswarm"] = "importance",
        fmt: Literal["png", "svg"] = "png",
    ) -> bytes:
        """A job's importance bar chart or beeswarm, as image bytes."""
        return self.request("GET", self._job(job_id, f"plots/{kind}.{fmt}")).content
