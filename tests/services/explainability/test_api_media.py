"""LIME on text and images through ``/v1/explanations/text`` and ``/image``, the real app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from synapsenet.core.asgi_transport import InProcessTransport
from synapsenet.core.auth import Role
from synapsenet.core.platform import Platform
from synapsenet.errors import InvalidError
from synapsenet.gateway import create_app
from synapsenet.gateway.problems import PROBLEM_MEDIA_TYPE
from synapsenet.services.explainability import ExplanationService, InMemoryModelLoader
from synapsenet.services.explainability._lime_media import check_image, check_text, explain_text
from synapsenet.services.explainability.client import ExplainabilityClient
from synapsenet.services.explainability.lime_image import LimeImage
from synapsenet.services.explainability.lime_text import LimeText
from tests.services.explainability.service_fixtures import FEATURES, regressor, training_rows

BASE = "/v1/explanations"
REVIEW = "A good film: good acting, a bad ending, and popcorn."
TEXT_PARAMETERS: dict[str, Any] = {"n_samples": 400}
IMAGE_PARAMETERS: dict[str, Any] = {
    "segmentation": "slic",
    "n_segments": 4,
    "compactness": 0.1,
    "n_samples": 128,
    "hide_color": 0.0,  # uniform squares hidden by their own mean colour would not change
}


def sentiment(texts: list[str]) -> npt.NDArray[np.float64]:
    """P(negative), P(positive) from counts of 'good' and 'bad' (nothing else matters)."""
    score = np.array(
        [len(re.findall(r"\bgood\b", t)) - 1.5 * len(re.findall(r"\bbad\b", t)) for t in texts]
    )
    positive = 1.0 / (1.0 + np.exp(-score))
    return np.column_stack([1.0 - positive, positive])


def image() -> npt.NDArray[np.float64]:
    """24 x 24 RGB: a bright left half and a dark right half, split into four quadrants."""
    pixels = np.zeros((24, 24, 3))
    pixels[:, :12] = 0.9
    pixels[:12, :, 2] += 0.05  # the top and bottom differ too, so SLIC finds four squares
    return pixels


def brightness(batch: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """P(bright) from the top-left quadrant alone."""
    bright = batch[:, :12, :12].mean(axis=(1, 2, 3))
    return np.column_stack([1.0 - bright, bright])


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    application = create_app(platform=platform)
    loader = InMemoryModelLoader()
    loader.register(
        "credit", "1", regressor(), feature_names=FEATURES, background=training_rows()[:50]
    )
    loader.register_text("reviews", "1", sentiment, output_names=["negative", "positive"])
    loader.register_image("lamps", "1", brightness, output_names=["dark", "bright"])
    service: ExplanationService = application.state.services["explainability"]
    service.loader = loader
    return application


@pytest.fixture
def http(app: FastAPI, platform: Platform) -> Iterator[TestClient]:
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["X-API-Key"] = platform.keys.create(Role.OPERATOR, name="test").token
    yield client
    client.close()


def post(http: TestClient, route: str, **body: Any) -> dict[str, Any]:
    response = http.post(f"{BASE}/{route}", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def problem(http: TestClient, route: str, status: int, **body: Any) -> dict[str, Any]:
    response = http.post(f"{BASE}/{route}" if route else BASE, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    data: dict[str, Any] = response.json()
    return data


# ---------------------------------------------------------------------- text


def test_text_explanation_is_limetexts_and_names_the_words_the_model_reads(
    http: TestClient,
) -> None:
    body = post(http, "text", model="reviews", version="1", text=REVIEW, parameters=TEXT_PARAMETERS)
    expected = LimeText(seed=0, **TEXT_PARAMETERS).explain(sentiment, REVIEW)
    assert body["type"] == "lime_text"
    assert body["words"] == list(expected.feature_names)
    assert body["output_names"] == ["negative", "positive"]
    np.testing.assert_allclose(body["weights"], expected.values[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(body["prediction"], sentiment([REVIEW])[0])
    weights = dict(zip(body["words"], np.asarray(body["weights"])[:, 1], strict=True))
    assert weights["good"] > 0.1
    assert weights["bad"] < -0.1
    assert max(abs(w) for word, w in weights.items() if word not in ("good", "bad")) < 0.02
    good = body["words"].index("good")
    assert body["positions"][good] == [m.start() for m in re.finditer("good", REVIEW)]
    assert body["text"] == REVIEW
    assert body["seed"] == 0
    assert body["cached"] is False


def test_a_repeated_text_request_is_a_cache_hit_and_a_new_seed_is_not(
    http: TestClient, platform: Platform
) -> None:
    first = post(http, "text", model="reviews", version="1", text=REVIEW)
    again = post(http, "text", model="reviews", version="1", text=REVIEW)
    reseeded = post(http, "text", model="reviews", version="1", text=REVIEW, parameters={"seed": 3})
    assert [first["cached"], again["cached"], reseeded["cached"]] == [False, True, False]
    assert again["weights"] == first["weights"]
    assert reseeded["seed"] == 3
    requests = platform.metrics.get_sample_value(
        "synapsenet_explanation_requests_total", {"method": "lime", "cached": "true"}
    )
    assert requests == 1.0


def test_bad_text_requests_are_422_naming_the_field(http: TestClient) -> None:
    ok = {"model": "reviews", "version": "1"}
    assert problem(http, "text", 422, **ok, text="")["field"] == "body.text"
    assert problem(http, "text", 422, **ok, text="x" * 100_001)["field"] == "body.text"
    no_words = problem(http, "text", 422, **ok, text="!? ...")
    assert no_words["field"] == "text"
    assert "at least one word" in no_words["detail"]
    unknown = problem(http, "text", 422, **ok, text=REVIEW, parameters={"mode": "regression"})
    assert unknown["field"] == "parameters.mode"
    bad = problem(http, "text", 422, **ok, text=REVIEW, parameters={"n_samples": 0})
    assert "n_samples" in bad["detail"]
    assert problem(http, "text", 422, **ok, text=REVIEW, extra=1)["field"] == "body.extra"


def test_inputs_a_model_does_not_take_are_422_naming_the_right_route(http: TestClient) -> None:
    tabular = problem(http, "text", 422, model="credit", version="1", text=REVIEW)
    assert tabular["field"] == "model"
    assert "takes tabular input" in tabular["detail"]
    assert "POST /v1/explanations with instances" in tabular["detail"]
    rows = problem(http, "", 422, model="reviews", version="1", instances=[[1.0]])
    assert rows["field"] == "model"
    assert "POST /v1/explanations/text" in rows["detail"]
    job = http.post(f"{BASE}/jobs", json={"model": "reviews", "version": "1", "instances": [[1]]})
    assert job.status_code == 422
    pixels = problem(http, "image", 422, model="reviews", version="1", image=image().tolist())
    assert "takes text input" in pixels["detail"]
    assert problem(http, "text", 404, model="reviews", version="9", text=REVIEW)


# ---------------------------------------------------------------------- images


def test_image_explanation_is_limeimages_and_credits_the_region_the_model_reads(
    http: TestClient,
) -> None:
    body = post(
        http,
        "image",
        model="lamps",
        version="1",
        image=image().tolist(),
        parameters=IMAGE_PARAMETERS,
    )
    explainer = LimeImage(seed=0, **IMAGE_PARAMETERS)
    expected = explainer.explain(brightness, image())
    segments = np.asarray(body["segments"])
    np.testing.assert_array_equal(segments, expected.extras["segments"])
    assert segments.shape == (24, 24)
    assert len(np.unique(segments)) == 4
    np.testing.assert_allclose(body["weights"], expected.values[0], rtol=1e-12, atol=1e-15)
    assert body["type"] == "lime_image"
    assert body["output_names"] == ["dark", "bright"]
    bright = np.asarray(body["weights"])[:, 1]
    read = segments[0, 0]  # the top-left quadrant, the only one the model looks at
    assert bright[read] > 0.2
    assert np.abs(np.delete(bright, read)).max() < 0.02
    again = post(
        http,
        "image",
        model="lamps",
        version="1",
        image=image().tolist(),
        parameters=IMAGE_PARAMETERS,
    )
    assert (body["cached"], again["cached"]) == (False, True)


@pytest.mark.parametrize(
    ("pixels", "field", "message"),
    [
        ([[1.0, 2.0], [3.0]], "image", "rectangular"),
        ([[[0.0] * 5] * 2] * 2, "image", "at most 4"),
        ([[0.0] * 600] * 600, "image", "at most 262144"),
        ([[[[0.0]]]], "body.image", ""),
        ([], "body.image", ""),
    ],
)
def test_bad_images_are_422_naming_the_image(
    http: TestClient, pixels: Any, field: str, message: str
) -> None:
    found = problem(http, "image", 422, model="lamps", version="1", image=pixels)
    assert found["field"].startswith(field)
    assert message in found["detail"]


def test_image_parameters_are_checked(http: TestClient) -> None:
    body = {"model": "lamps", "version": "1", "image": image().tolist()}
    unknown = problem(http, "image", 422, **body, parameters={"bow": True})
    assert unknown["field"] == "parameters.bow"
    bad = problem(http, "image", 422, **body, parameters={"segmentation": "watershed"})
    assert "segmentation" in bad["detail"]


# ---------------------------------------------------------------------- service and client


def test_the_service_refuses_non_finite_images_and_blank_text(app: FastAPI) -> None:
    service: ExplanationService = app.state.services["explainability"]
    with pytest.raises(InvalidError, match="NaN or infinite") as caught:
        service.explain_image("lamps", "1", np.full((4, 4), np.nan))
    assert caught.value.field == "image"
    with pytest.raises(InvalidError, match="non-empty string"):
        service.explain_text("reviews", "1", "   ")


def test_the_client_explains_text_and_images(app: FastAPI, platform: Platform) -> None:
    token = platform.keys.create(Role.OPERATOR, name="sdk").token
    with ExplainabilityClient(
        "http://synapsenet.internal", api_key=token, transport=InProcessTransport(app)
    ) as client:
        text = client.explain_text("reviews", "1", REVIEW, parameters=TEXT_PARAMETERS)
        assert text.words[int(np.argmax(np.asarray(text.weights)[:, 1]))] == "good"
        picture = client.explain_image("lamps", "1", image(), parameters=IMAGE_PARAMETERS)
        assert len(picture.weights) == 4
        assert picture.cached is False
        with pytest.raises(InvalidError) as caught:
            client.explain_text("credit", "1", REVIEW)
        assert caught.value.field == "model"


def test_direct_checks_name_what_is_wrong() -> None:
    with pytest.raises(InvalidError, match="non-empty string"):
        check_text(42)
    with pytest.raises(InvalidError, match="at most 100000 are explained"):
        check_text("word " * 20_001)
    with pytest.raises(InvalidError, match=r"got shape \(3,\)"):
        check_image([1.0, 2.0, 3.0])
    with pytest.raises(InvalidError, match="at most 262144 are explained"):
        check_image(np.zeros((513, 512)))
    assert check_image([[0, 1], [2, 3]]).dtype == np.float64


def test_output_names_that_do_not_fit_the_model_are_not_applied() -> None:
    loader = InMemoryModelLoader()
    named = loader.register_text("reviews", "1", sentiment, output_names=["only one"])
    explanation = explain_text(named, REVIEW, {"n_samples": 100})
    assert explanation.output_names == ("0", "1")
    unnamed = loader.register_text("reviews", "2", sentiment)
    assert explain_text(unnamed, REVIEW, {"n_samples": 100}).output_names == ("0", "1")
