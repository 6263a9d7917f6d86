"""What ``synapsenet explain text`` and ``explain image`` read, and how they show the answer.

Inputs become what ``/v1/explanations/text`` and ``/image`` take: a non-empty string, and an
``(H, W)`` or ``(H, W, C)`` array of floats in [0, 1]. Answers become a Rich table of the
strongest words or superpixels for one output, a line on the prediction and the surrogate's
fit, and for images the pixel mask the overlay plot tints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.markup import escape
from rich.table import Table

from synapsenet.errors import InvalidError
from synapsenet.services.explainability._lime_media import MAX_IMAGE_PIXELS
from synapsenet.services.explainability.schemas import (
    ImageExplanationPublic,
    TextExplanationPublic,
)

LimeAnswer = TextExplanationPublic | ImageExplanationPublic


def _existing_file(path: Path, what: str, field: str) -> Path:
    if not path.exists():
        raise InvalidError(f"{what} {path} does not exist", field=field)
    if not path.is_file():
        raise InvalidError(f"{what} {path} is not a file", field=field)
    return path


def read_text(text: str | None, file: Path | None) -> str:
    """The text to explain, from ``--text`` or a UTF-8 ``--file``.

    Raises:
        InvalidError: Naming ``text`` or ``file``: neither or both given, a missing or
            unreadable file, or a text with nothing but whitespace.
    """
    if (text is None) == (file is None):
        raise InvalidError("give exactly one of --text and --file", field="text")
    if file is not None:
        _existing_file(file, "text file", "file")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidError(
                f"text file {file} cannot be read as UTF-8 text: {exc}", field="file"
            ) from None
    assert text is not None
    if not text.strip():
        source = "--text" if file is None else f"text file {file}"
        raise InvalidError(f"{source} is empty: there are no words to explain", field="text")
    return text


def read_image(path: Path) -> npt.NDArray[np.float64]:
    """A PNG or JPEG file as floats in [0, 1]: ``(H, W)`` grey or ``(H, W, C)`` colour.

    A fully opaque alpha channel is dropped (it carries nothing); a translucent one is kept.

    Raises:
        InvalidError: Naming ``image``: a missing file, one that is not a readable image,
            or an image larger than the server explains.
    """
    _existing_file(path, "image file", "image")
    from matplotlib.image import imread  # matplotlib: slow import, only for images

    try:
        pixels = np.asarray(imread(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidError(
            f"image file {path} is not a readable PNG or JPEG image: {exc}", field="image"
        ) from None
    if np.issubdtype(pixels.dtype, np.integer):
        image = pixels.astype(np.float64) / np.iinfo(pixels.dtype).max
    else:
        image = pixels.astype(np.float64)
    if image.ndim == 3 and image.shape[2] == 4 and np.all(image[..., 3] == 1.0):
        image = image[..., :3]
    height, width = image.shape[:2]
    if height * width > MAX_IMAGE_PIXELS:
        raise InvalidError(
            f"image file {path} has {height} x {width} pixels; the server explains at most "
            f"{MAX_IMAGE_PIXELS} (512 x 512): resize it first",
            field="image",
        )
    return image


def explained_output(answer: LimeAnswer, label: str | None) -> int:
    """Which output's weights to show: ``label`` (a name or an index), else the prediction.

    Without a label, a classifier's most probable class is shown, and a regressor's first
    output.

    Raises:
        InvalidError: Naming ``label`` when it is neither an output name nor an index.
    """
    names = answer.output_names
    if label is None:
        if answer.parameters.get("mode") == "regression":
            return 0
        scores = [-np.inf if p is None else p for p in answer.prediction]
        return int(np.argmax(scores))
    if label in names:
        return names.index(label)
    if label.isdigit() and int(label) < len(names):
        return int(label)
    raise InvalidError(
        f"--label must be one of the outputs {', '.join(names)} or an index below "
        f"{len(names)}. Got {label!r} instead.",
        field="label",
    )


def _weights(answer: LimeAnswer, output: int) -> npt.NDArray[np.float64]:
    return np.array([0.0 if row[output] is None else row[output] for row in answer.weights])


def top_features(answer: LimeAnswer, output: int, top: int) -> list[int]:
    """The ``top`` features with the largest weights in absolute value for ``output``.

    Ties keep the answer's order (the words' order in the text, segments by label).
    """
    weights = _weights(answer, output)
    order = np.argsort(-np.abs(weights), kind="stable")[:top]
    return [int(i) for i in order]


def _signed(value: float) -> str:
    colour = "green" if value > 0 else "red" if value < 0 else "default"
    return f"[{colour}]{value:+.4g}[/]"


def text_table(answer: TextExplanationPublic, output: int, top: int) -> Table:
    """The strongest words for ``output``: weight (signed) and character offsets of uses.

    Ranked by absolute weight; ties keep the text's order.
    """
    weights = _weights(answer, output)
    table = Table("rank", "word", "weight", "at (chars)")
    for rank, index in enumerate(top_features(answer, output, top), start=1):
        table.add_row(
            str(rank),
            escape(answer.words[index]),
            _signed(float(weights[index])),
            ", ".join(map(str, answer.positions[index])),
        )
    return table


def image_table(answer: ImageExplanationPublic, output: int, top: int) -> Table:
    """The strongest superpixels for ``output``: weight (signed), size and centre."""
    weights = _weights(answer, output)
    segments = np.asarray(answer.segments)
    table = Table("rank", "segment", "weight", "pixels", "centre (row, col)")
    for rank, index in enumerate(top_features(answer, output, top), start=1):
        rows, cols = np.nonzero(segments == index)
        table.add_row(
            str(rank),
            str(index),
            _signed(float(weights[index])),
            str(rows.size),
            f"({rows.mean():.0f}, {cols.mean():.0f})",
        )
    return table


def heading(answer: LimeAnswer, output: int) -> str:
    """What the table shows: the explanation, the model and the output."""
    features = "words" if isinstance(answer, TextExplanationPublic) else "segments"
    return (
        f"[bold]{answer.type.value}[/]: {escape(answer.model)} version {escape(answer.version)}, "
        f"{features} weighed for {escape(repr(answer.output_names[output]))}"
    )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def summary(answer: LimeAnswer, output: int) -> str:
    """The model's outputs, then the surrogate's fit for the output shown."""
    predictions = ", ".join(
        f"{escape(name)} {_number(value)}"
        for name, value in zip(answer.output_names, answer.prediction, strict=True)
    )
    lines = [
        f"prediction: {predictions}",
        f"explained: {escape(answer.output_names[output])} "
        f"(surrogate R2 {_number(answer.score[output])}, "
        f"local prediction {_number(answer.local_prediction[output])}, "
        f"intercept {_number(answer.intercept[output])}; seed {answer.seed})",
    ]
    if answer.cached:
        lines.append("(answered from the cache)")
    return "\n".join(lines)


def overlay_mask(answer: ImageExplanationPublic, output: int, top: int) -> npt.NDArray[np.int8]:
    """The top superpixels as a pixel mask: 1 where they raise ``output``, -1 where they lower it.

    This is LIME's ``get_image_and_mask`` with neither ``positive_only`` nor
    ``negative_only``; superpixels of weight zero stay unmarked.
    """
    weights = _weights(answer, output)
    signs = np.zeros(weights.size, dtype=np.int8)
    chosen = np.array(top_features(answer, output, top), dtype=np.intp)
    signs[chosen] = np.sign(weights[chosen]).astype(np.int8)
    return np.asarray(signs[np.asarray(answer.segments)], dtype=np.int8)
