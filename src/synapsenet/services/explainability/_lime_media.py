"""LIME on text and images for the explanation service: inputs, parameters, explainers.

A text or image model is a prediction function registered with its input kind and mode
(:meth:`~.loader.InMemoryModelLoader.register_text`, ``register_image``). The service hands
the request's text or image here; this module checks it and the parameters the request may
set (everything but the mode, which belongs to the model), and explains with
:class:`~.lime_text.LimeText` or :class:`~.lime_image.LimeImage` under seed 0 unless the
request gives one, so that identical requests give identical (cacheable) explanations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

import numpy as np

from synapsenet.errors import InvalidError

from .loader import InputKind, LoadedModel
from .models import Explanation, FloatArray

TEXT_PARAMETERS: Final = frozenset(
    {
        "n_samples",
        "kernel_width",
        "bow",
        "split_expression",
        "mask_string",
        "feature_selection",
        "n_features",
        "seed",
        "sampling",
    }
)
"""The :class:`~.lime_text.LimeText` parameters a request may set."""

IMAGE_PARAMETERS: Final = frozenset(
    {
        "segmentation",
        "n_segments",
        "compactness",
        "kernel_size",
        "max_dist",
        "ratio",
        "n_samples",
        "hide_color",
        "kernel_width",
        "feature_selection",
        "n_features",
        "batch_size",
        "seed",
        "segmentation_seed",
        "sampling",
    }
)
"""The :class:`~.lime_image.LimeImage` parameters a request may set."""

MAX_TEXT_CHARS: Final = 100_000
"""Longest text explained synchronously."""

MAX_IMAGE_PIXELS: Final = 512 * 512
"""Largest image (height x width) explained synchronously."""

MAX_IMAGE_CHANNELS: Final = 4


def require_input_kind(loaded: LoadedModel, kind: InputKind) -> None:
    """Refuse a request whose input is not what the model takes.

    Raises:
        InvalidError: Naming the model, what it takes and where such input goes.
    """
    if loaded.input_kind is kind:
        return
    routes = {
        InputKind.TABULAR: "POST /v1/explanations with instances",
        InputKind.TEXT: "POST /v1/explanations/text",
        InputKind.IMAGE: "POST /v1/explanations/image",
    }
    raise InvalidError(
        f"model {loaded.name} version {loaded.version} takes {loaded.input_kind.value} input, "
        f"not {kind.value}; explain it with {routes[loaded.input_kind]}",
        field="model",
    )


def _options(parameters: Mapping[str, Any], allowed: frozenset[str], kind: str) -> dict[str, Any]:
    unknown = sorted(set(parameters) - allowed)
    if unknown:
        raise InvalidError(
            f"LIME for {kind} does not take the parameter(s) {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(allowed))}",
            field=f"parameters.{unknown[0]}",
        )
    return {"seed": 0, **parameters}


def _named(explanation: Explanation, loaded: LoadedModel) -> Explanation:
    names = loaded.output_names
    if names is None or explanation.n_outputs == 0:
        return explanation
    labels = explanation.extras.get("labels", ())
    if len(labels) == explanation.n_outputs and max(labels) < len(names):
        return replace(explanation, output_names=tuple(names[i] for i in labels))
    return explanation


def check_text(text: object) -> str:
    """The text, if it is a non-empty string of at most :data:`MAX_TEXT_CHARS` characters.

    Raises:
        InvalidError: Naming ``text``.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidError("text must be a non-empty string", field="text")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidError(
            f"text has {len(text)} characters; at most {MAX_TEXT_CHARS} are explained",
            field="text",
        )
    return text


def check_image(image: object) -> FloatArray:
    """The image as a float array ``(H, W)`` or ``(H, W, C)``, checked.

    Raises:
        InvalidError: Naming ``image``: ragged or non-numeric, wrong rank, too many channels
            or pixels, NaN or infinity.
    """
    try:
        array = np.asarray(image, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidError(
            "image must be a rectangular (H, W) or (H, W, C) array of numbers",
            field="image",
        ) from None
    if array.ndim not in (2, 3) or array.size == 0:
        raise InvalidError(
            f"image must be an (H, W) or (H, W, C) array; got shape {array.shape}",
            field="image",
        )
    if array.ndim == 3 and array.shape[2] > MAX_IMAGE_CHANNELS:
        raise InvalidError(
            f"image has {array.shape[2]} channels; at most {MAX_IMAGE_CHANNELS} are taken",
            field="image",
        )
    if array.shape[0] * array.shape[1] > MAX_IMAGE_PIXELS:
        raise InvalidError(
            f"image has {array.shape[0]} x {array.shape[1]} pixels; at most "
            f"{MAX_IMAGE_PIXELS} are explained",
            field="image",
        )
    if not np.all(np.isfinite(array)):
        raise InvalidError("image must not contain NaN or infinite values", field="image")
    return array


def explain_text(loaded: LoadedModel, text: str, parameters: Mapping[str, Any]) -> Explanation:
    """LIME weights of the words of ``text`` for every output of a text model.

    Raises:
        InvalidError: On an unknown or invalid parameter, or a text without words.
    """
    from .lime_text import LimeText

    require_input_kind(loaded, InputKind.TEXT)
    options = _options(parameters, TEXT_PARAMETERS, "text")
    explainer = LimeText(mode=loaded.mode or "classification", **options)
    return _named(explainer.explain(loaded.model, text), loaded)  # type: ignore[arg-type]


def explain_image(
    loaded: LoadedModel, image: FloatArray, parameters: Mapping[str, Any]
) -> Explanation:
    """LIME weights of the superpixels of ``image`` for every output of an image model.

    Raises:
        InvalidError: On an unknown or invalid parameter.
    """
    from .lime_image import LimeImage

    require_input_kind(loaded, InputKind.IMAGE)
    options = _options(parameters, IMAGE_PARAMETERS, "images")
    explainer = LimeImage(mode=loaded.mode or "classification", **options)
    return _named(explainer.explain(loaded.model, image), loaded)  # type: ignore[arg-type]
