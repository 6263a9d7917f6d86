"""``synapsenet explain text`` and ``explain image`` against a real uvicorn server.

The server hosts a scikit-learn pipeline over raw strings and an image classifier; every
printed word or segment is checked against the answer a direct client call gets for the
same request.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from matplotlib.image import imread, imsave
from PIL import Image
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from typer.testing import CliRunner

from synapsenet.cli._explain_media import explained_output, read_image, summary, top_features
from synapsenet.cli.main import app
from synapsenet.config import Settings
from synapsenet.services.explainability import ExplanationService, InMemoryModelLoader
from synapsenet.services.explainability.client import ExplainabilityClient
from synapsenet.services.explainability.loader_chain import ChainedModelLoader
from synapsenet.services.explainability.schemas import (
    ImageExplanationPublic,
    TextExplanationPublic,
)
from tests.fixtures.live_server import Server

runner = CliRunner()

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REVIEW = "A good cast, a good story, a bad ending and popcorn."
CORPUS = [
    ("a good film", 1),
    ("good acting and a good story", 1),
    ("great fun with a good cast", 1),
    ("good ending", 1),
    ("a bad film", 0),
    ("bad acting and a dull story", 0),
    ("dull and bad", 0),
    ("a bad ending", 0),
]
IMAGE_OPTIONS = ("--hide-color", "0", "--samples", "128", "--seed", "4")
IMAGE_PARAMETERS: dict[str, Any] = {"hide_color": 0.0, "n_samples": 128, "seed": 4}


def sentiment_pipeline() -> Any:
    """Word counts and a logistic regression, fitted on a few labelled reviews."""
    texts, labels = zip(*CORPUS, strict=True)
    return make_pipeline(CountVectorizer(binary=True), LogisticRegression(C=10.0)).fit(
        list(texts), list(labels)
    )


def word_counts(texts: list[str]) -> npt.NDArray[np.float64]:
    """A two-output regression: how often 'good' and 'bad' occur."""
    return np.array(
        [[len(re.findall(r"\bgood\b", t)), len(re.findall(r"\bbad\b", t))] for t in texts],
        dtype=np.float64,
    )


def quadrants() -> npt.NDArray[np.float64]:
    """32 x 32 RGB in four plain colours, one per quadrant."""
    pixels = np.zeros((32, 32, 3))
    pixels[:16, :16] = (0.9, 0.2, 0.1)
    pixels[:16, 16:] = (0.1, 0.7, 0.2)
    pixels[16:, :16] = (0.2, 0.3, 0.9)
    pixels[16:, 16:] = (0.8, 0.8, 0.2)
    return pixels


def redness(batch: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """P(red), P(other) from the red channel of the top-left quadrant alone (RGB input)."""
    assert batch.shape[-1] == 3
    red = batch[:, :16, :16, 0].mean(axis=(1, 2))
    return np.column_stack([red, 1.0 - red])


@pytest.fixture(autouse=True)
def _isolated(clean_environment: None) -> None:
    """Every test runs without the caller's SYNAPSENET_* settings."""


@pytest.fixture
def server(live_server: Server) -> Server:
    """The live server, also serving a text classifier, a text regressor and an image model."""
    models = InMemoryModelLoader()
    models.register_text(
        "reviews", "1", sentiment_pipeline().predict_proba, output_names=["negative", "positive"]
    )
    models.register_text("counts", "1", word_counts, mode="regression")
    models.register_image("colours", "1", redness, output_names=["red", "other"])
    service: ExplanationService = live_server.app.state.services["explainability"]
    service.loader = ChainedModelLoader([models, service.loader])
    return live_server


@pytest.fixture
def client(server: Server, settings: Settings) -> ExplainabilityClient:
    key = settings.admin_key_path.read_text().strip()
    return ExplainabilityClient(server.url, api_key=key, timeout=120.0)


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "quadrants.png"
    imsave(path, quadrants())
    return path


def run(server: Server, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["explain", *args], env=server.env)
    return result.exit_code, result.stdout, result.stderr


def table_rows(out: str) -> list[list[str]]:
    """The body rows of the Rich table in ``out``, as stripped cells."""
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    assert header.split("┃")[1].strip() == "rank", out
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in out.splitlines()
        if line.startswith("│")
    ]


def ranked(weights: list[list[float | None]], output: int) -> list[tuple[int, float]]:
    """Features by decreasing |weight| for ``output``, ties in order (as the CLI ranks)."""
    values = [w[output] or 0.0 for w in weights]
    order = sorted(range(len(values)), key=lambda j: -abs(values[j]))
    return [(j, values[j]) for j in order]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data.startswith(PNG_MAGIC)
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ---------------------------------------------------------------------- text


def test_text_prints_the_top_words_the_server_computed(
    server: Server, client: ExplainabilityClient
) -> None:
    code, out, err = run(
        server, "text", "reviews", "--version", "1", "--text", REVIEW,
        "--samples", "300", "--seed", "3", "--top", "3",
    )  # fmt: skip
    assert code == 0, err
    answer = client.explain_text("reviews", "1", REVIEW, parameters={"n_samples": 300, "seed": 3})
    assert answer.cached  # the CLI asked the very same question first
    positive = answer.output_names.index("positive")
    assert (answer.prediction[positive] or 0.0) > 0.5  # the predicted class is shown
    expected = ranked(answer.weights, positive)[:3]
    rows = table_rows(out)
    assert [row[1] for row in rows] == [answer.words[j] for j, _ in expected]
    assert [row[2] for row in rows] == [f"{w:+.4g}" for _, w in expected]
    assert rows[0][1] in ("good", "bad")
    good = answer.words.index("good")
    assert rows[[row[1] for row in rows].index("good")][3] == ", ".join(
        str(p) for p in answer.positions[good]
    )
    assert "words weighed for 'positive'" in out
    assert f"positive {answer.prediction[positive]:.4g}" in out
    assert f"surrogate R2 {answer.score[positive]:.4g}" in out
    assert "seed 3" in out


def test_text_from_a_file_for_another_label_as_json(
    server: Server, client: ExplainabilityClient, tmp_path: Path
) -> None:
    review = tmp_path / "review.txt"
    review.write_text(REVIEW + "\n", encoding="utf-8")
    args = ("text", "reviews", "-v", "1", "--file", str(review), "--samples", "200", "--no-bow")
    code, out, err = run(server, *args, "--features", "4", "--json")
    assert code == 0, err
    body = json.loads(out)
    parameters = {"n_samples": 200, "bow": False, "n_features": 4}
    answer = client.explain_text("reviews", "1", REVIEW + "\n", parameters=parameters)
    assert body == answer.model_dump(mode="json") | {
        "cached": False,
        "runtime_seconds": body["runtime_seconds"],
    }
    assert body["words"].count("good") == 2  # one feature per occurrence
    assert sum(1 for w in body["weights"] if any(w)) <= 4

    code, out, err = run(server, *args, "--features", "4", "--label", "negative")
    assert code == 0, err
    negative = answer.output_names.index("negative")
    rows = table_rows(out)
    assert [row[2] for row in rows[:4]] == [
        f"{w:+.4g}" for _, w in ranked(answer.weights, negative)[:4]
    ]
    assert "words weighed for 'negative'" in out
    code, out, err = run(server, *args, "--features", "4", "--label", "1")
    assert "words weighed for 'positive'" in out


def test_a_regression_text_model_shows_its_first_output_unless_told(server: Server) -> None:
    text = "good bad bad bad"
    code, out, err = run(server, "text", "counts", "-v", "1", "-t", text, "--samples", "100")
    assert code == 0, err
    # output_1 (three times 'bad') is the larger, but a regressor has no predicted class.
    assert "words weighed for 'output_0'" in out
    assert table_rows(out)[0][1] == "good"
    code, out, err = run(
        server, "text", "counts", "-v", "1", "-t", text, "--samples", "100", "--label", "output_1"
    )
    assert code == 0, err
    (_, word, weight, _), *_ = table_rows(out)
    assert (word, weight[0]) == ("bad", "+")
    assert "(answered from the cache)" in out


# ---------------------------------------------------------------------- images


def test_image_prints_the_top_segments_and_writes_the_overlay(
    server: Server, client: ExplainabilityClient, png: Path, tmp_path: Path
) -> None:
    overlay = tmp_path / "overlay.png"
    code, out, err = run(
        server, "image", "colours", str(png), "--version", "1", "--segmenter", "slic",
        "--segments", "4", *IMAGE_OPTIONS, "--top", "1", "--overlay", str(overlay),
    )  # fmt: skip
    assert code == 0, err
    pixels = imread(png)[..., :3].astype(np.float64)  # the PNG is RGBA, fully opaque
    parameters = IMAGE_PARAMETERS | {"segmentation": "slic", "n_segments": 4}
    answer = client.explain_image("colours", "1", pixels, parameters=parameters)
    assert answer.cached  # the same pixels and parameters as the CLI sent
    segments = np.asarray(answer.segments)
    assert len(np.unique(segments)) == 4
    (segment, weight), *_ = ranked(answer.weights, 0)
    assert segment == segments[0, 0]  # the quadrant the model reads
    assert weight > 0.5
    rows = table_rows(out)
    assert len(rows) == 1
    assert rows[0][1:5] == [
        str(segment),
        f"{weight:+.4g}",
        str(int((segments == segment).sum())),
        "(8, 8)",
    ]
    assert "segments weighed for 'red'" in out
    assert f"surrogate R2 {answer.score[0]:.4g}" in out

    data = overlay.read_bytes()
    assert f"Wrote {overlay} ({len(data)} bytes)." in out.replace("\n", "")
    assert png_size(data) == (500, 500)  # 5 inches at 100 dpi, square like the image
    drawn = imread(overlay)
    assert drawn.shape == (500, 500, 4)
    tinted, untouched = drawn[125, 125, :3], drawn[375, 375, :3]
    assert tinted[1] > 0.4  # green over the red quadrant: it raises P(red)
    np.testing.assert_allclose(untouched, quadrants()[24, 24], atol=0.01)


def test_image_from_a_jpeg_as_json_with_an_svg_overlay(
    server: Server, client: ExplainabilityClient, tmp_path: Path
) -> None:
    jpeg, overlay = tmp_path / "quadrants.jpg", tmp_path / "overlay.svg"
    imsave(jpeg, (quadrants() * 255).astype(np.uint8))
    code, out, err = run(
        server, "image", "colours", str(jpeg), "-v", "1", *IMAGE_OPTIONS,
        "--json", "--overlay", str(overlay),
    )  # fmt: skip
    assert code == 0, err
    body = json.loads(out)  # nothing but the answer on stdout
    pixels = imread(jpeg).astype(np.float64) / 255.0
    answer = client.explain_image("colours", "1", pixels, parameters=IMAGE_PARAMETERS)
    assert answer.cached
    assert body["weights"] == answer.weights
    assert body["segments"] == answer.segments
    assert body["parameters"]["segmentation"] == "quickshift"
    assert overlay.read_text().lstrip().startswith("<?xml")


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-t", "x", "--file", "x.txt"), "give exactly one of --text and --file"),
        ((), "give exactly one of --text and --file"),
        (("-t", "  \n"), "--text is empty: there are no words to explain"),
        (("--file", "missing.txt"), "text file missing.txt does not exist"),
        (("--file", "."), "text file . is not a file"),
        (
            ("--file", "latin1.txt"),
            "text file latin1.txt cannot be read as UTF-8 text: 'utf-8' codec",
        ),
        (("--file", "blank.txt"), "text file blank.txt is empty"),
        (("-t", "!? ..."), "must contain at least one word"),
        (("-t", REVIEW, "--samples", "1"), "'n_samples' parameter of LimeText must be an int >= 2"),
        (("-t", REVIEW, "--label", "neutral"), "--label must be one of the outputs negative, pos"),
        (("-t", REVIEW, "--label", "2"), "or an index below 2. Got '2' instead."),
    ],
)
def test_text_errors_are_one_red_line_naming_the_problem(
    server: Server, args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    # Relative paths name files in tmp_path, the working directory (see ``_isolated``).
    (tmp_path / "latin1.txt").write_bytes("un café très bon".encode("latin-1"))
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    code, out, err = run(server, "text", "reviews", "--version", "1", *args)
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert message in err.replace("\n", "")


def test_server_errors_name_the_model_and_what_it_takes(server: Server, png: Path) -> None:
    code, _, err = run(server, "text", "reviews", "--version", "9", "-t", REVIEW)
    assert code == 1
    assert "no model 'reviews' version '9'" in err
    code, _, err = run(server, "image", "reviews", str(png), "-v", "1", "--samples", "10")
    assert code == 1
    assert "model reviews version 1 takes text input, not image" in err.replace("\n", "")
    code, _, err = run(server, "text", "colours", "-v", "1", "-t", REVIEW)
    assert code == 1
    assert "explain it with POST /v1/explanations/image" in err.replace("\n", "")


@pytest.mark.parametrize(
    ("image", "options", "message"),
    [
        ("missing.png", (), "image file missing.png does not exist"),
        (".", (), "image file . is not a file"),
        ("garbage.png", (), "image file garbage.png is not a readable PNG or JPEG image"),
        ("garbage.jpg", (), "image file garbage.jpg is not a readable PNG or JPEG image"),
        ("huge.png", (), "has 600 x 600 pixels; the server explains at most 262144"),
        ("quadrants.png", ("--segmenter", "watershed"), "--segmenter must be quickshift or slic"),
        ("quadrants.png", ("--overlay", "out.jpg"), "--overlay must end in .png or .svg"),
        ("quadrants.png", ("--overlay", "no/out.png"), "the directory no does not exist"),
        ("quadrants.png", ("--overlay", "taken.png"), "--overlay taken.png cannot be written"),
        ("quadrants.png", ("--segments", "0"), "'n_segments' parameter of LimeImage"),
    ],
)
def test_image_errors_are_one_red_line_naming_the_problem(
    server: Server,
    png: Path,
    tmp_path: Path,
    image: str,
    options: tuple[str, ...],
    message: str,
) -> None:
    # Relative paths name files in tmp_path, the working directory (see ``_isolated``).
    (tmp_path / "garbage.png").write_bytes(b"not an image at all")
    (tmp_path / "garbage.jpg").write_bytes(PNG_MAGIC + b"\0" * 40)
    imsave(tmp_path / "huge.png", np.zeros((600, 600, 3)))
    (tmp_path / "taken.png").mkdir()
    code, out, err = run(
        server, "image", "colours", image, "-v", "1", *IMAGE_OPTIONS, "--segmenter", "slic",
        "--segments", "4", *options,
    )  # fmt: skip
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert message in err.replace("\n", "")


# ---------------------------------------------------------------------- pieces


def test_images_are_read_as_floats_in_0_1_with_an_opaque_alpha_dropped(tmp_path: Path) -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    np.testing.assert_allclose(read_image(tmp_path / "grey.png"), grey / 255.0)
    colour = (quadrants() * 255).astype(np.uint8)
    opaque = np.dstack([colour, np.full((32, 32), 255, np.uint8)])
    Image.fromarray(opaque, mode="RGBA").save(tmp_path / "opaque.png")
    np.testing.assert_allclose(read_image(tmp_path / "opaque.png"), colour / 255.0)
    translucent = opaque.copy()
    translucent[0, 0, 3] = 128
    Image.fromarray(translucent, mode="RGBA").save(tmp_path / "translucent.png")
    np.testing.assert_allclose(read_image(tmp_path / "translucent.png"), translucent / 255.0)
    Image.fromarray(colour, mode="RGB").save(tmp_path / "colour.jpg", quality=95)
    decoded = read_image(tmp_path / "colour.jpg")
    assert decoded.shape == (32, 32, 3)
    np.testing.assert_allclose(decoded[4, 4], quadrants()[4, 4], atol=0.03)


# ---------------------------------------------------------------------- answers with gaps


def test_missing_numbers_rank_last_and_print_as_not_available() -> None:
    answer = TextExplanationPublic.model_validate(
        {
            "model": "m",
            "version": "1",
            "type": "lime_text",
            "output_names": ["a", "b"],
            "weights": [[None, 0.1], [0.3, None], [-0.5, 0.2]],
            "intercept": [0.0, None],
            "score": [None, 0.9],
            "prediction": [None, 0.4],
            "local_prediction": [0.1, 0.2],
            "parameters": {"mode": "classification"},
            "seed": 0,
            "runtime_seconds": 0.1,
            "text": "x y z",
            "words": ["x", "y", "z"],
            "positions": [[0], [2], [4]],
        }
    )
    assert explained_output(answer, None) == 1  # a missing probability is never predicted
    assert top_features(answer, 0, 3) == [2, 1, 0]
    assert top_features(answer, 1, 2) == [2, 0]
    assert "prediction: a n/a, b 0.4" in summary(answer, 1)
    assert "surrogate R2 n/a" in summary(answer, 0)
    assert "intercept n/a" in summary(answer, 1)
    image = ImageExplanationPublic.model_validate(
        answer.model_dump(exclude={"text", "words", "positions"})
        | {"type": "lime_image", "segments": [[0, 1], [2, 2]]}
    )
    assert explained_output(image, "b") == 1
