"""``synapsenet explain``: explanations, batch jobs, importance and plots on a running server.

``run`` explains rows of a tabular model; ``text`` and ``image`` explain one text or one
image file with LIME (models registered as text or image models).

Every command talks to the server through :class:`ExplainabilityClient`. The server is
``--url`` (``SYNAPSENET_URL``); the key is ``--api-key`` (``SYNAPSENET_API_KEY``), else the
admin key ``synapsenet serve`` wrote under the data directory on its first start.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from synapsenet.cli._explain_media import (
    explained_output,
    heading,
    image_table,
    overlay_mask,
    read_image,
    read_text,
    summary,
    text_table,
)
from synapsenet.cli._remote import (
    DEFAULT_URL,
    ApiKeyOption,
    JsonOption,
    UrlOption,
    connect,
    new_console,
    print_json,
)
from synapsenet.core.jobs import JobStatus
from synapsenet.errors import InvalidError
from synapsenet.services.explainability.client import ExplainabilityClient
from synapsenet.services.explainability.lime_image import SEGMENTATIONS
from synapsenet.services.explainability.schemas import JobPublic

explain_app = typer.Typer(
    help="Explain model predictions (talks to a running server).", no_args_is_help=True
)
job_app = typer.Typer(help="Batch explanation jobs.", no_args_is_help=True)
explain_app.add_typer(job_app, name="job")

FileOption = Annotated[
    Path,
    typer.Option(
        "--file", "-f", exists=True, dir_okay=False, help="Rows: CSV with a header, or JSON."
    ),
]
MethodOption = Annotated[str, typer.Option("--method", help="shap or lime.")]
VersionOption = Annotated[str, typer.Option("--version", "-v", help="The model version.")]
SamplesOption = Annotated[
    int | None, typer.Option("--samples", help="Perturbed samples (server default if unset).")
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Sampling seed (default 0).")]
FeaturesOption = Annotated[
    int | None,
    typer.Option("--features", help="Most features the surrogate may use (server default)."),
]
LabelOption = Annotated[
    str | None,
    typer.Option(
        "--label",
        help="Output whose weights are shown: a name or an index (default: the predicted class).",
    ),
]


def _lime_parameters(**given: object) -> dict[str, object]:
    """The LIME parameters set on the command line; the server's defaults fill the rest."""
    return {name: value for name, value in given.items() if value is not None}


def _method(value: str) -> Literal["shap", "lime"]:
    if value == "shap":
        return "shap"
    if value == "lime":
        return "lime"
    raise InvalidError(f"--method must be shap or lime. Got {value!r} instead.", field="method")


def read_rows(path: Path) -> list[Any]:
    """Rows from a CSV file with a header (records) or a JSON list of rows or records.

    Raises:
        InvalidError: Naming ``file`` when the file cannot be read as rows.
    """
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        records = list(csv.DictReader(text.splitlines()))
        try:
            return [{k: float(v) if v != "" else None for k, v in r.items()} for r in records]
        except ValueError as exc:
            raise InvalidError(f"{path}: {exc}", field="file") from None
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidError(f"{path} is not valid JSON: {exc}", field="file") from None
    if not isinstance(rows, list):
        raise InvalidError(f"{path} must hold a JSON list of rows", field="file")
    return rows


def _print_job(job: JobPublic) -> None:
    line = f"job {job.id}: [bold]{job.status.value}[/] {job.progress:.0%} ({escape(job.message)})"
    if job.error:
        line += f"\n[red]{escape(job.error)}[/]"
    new_console().print(line)


@explain_app.command("run")
def run(
    model: Annotated[str, typer.Argument(help="The model's name.")],
    version: Annotated[str, typer.Argument(help="The model version.")],
    file: FileOption,
    method: MethodOption = "shap",
    top: Annotated[int, typer.Option("--top", min=1, help="Attributions shown per row.")] = 5,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Explain the rows of a file now and print each row's top attributions."""
    with connect(ExplainabilityClient, url, api_key, timeout=120.0) as client:
        explanation = client.explain(model, version, read_rows(file), method=_method(method))
    table = Table("row", "prediction", "base", "top attributions", title=explanation.type.value)
    for i, values in enumerate(explanation.values):
        first = [v[0] if v[0] is not None else 0.0 for v in values]
        order = sorted(range(len(first)), key=lambda j: -abs(first[j]))[:top]
        parts = [f"{explanation.feature_names[j]} {first[j]:+.4g}" for j in order]
        table.add_row(
            str(i),
            f"{explanation.predictions[i][0]:.4g}",
            f"{explanation.base_values[i][0]:.4g}",
            ", ".join(parts),
        )
    new_console().print(table)
    if explanation.cached:
        new_console().print("(answered from the cache)")


@job_app.command("submit")
def job_submit(
    model: Annotated[str, typer.Argument(help="The model's name.")],
    version: Annotated[str, typer.Argument(help="The model version.")],
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", exists=True, dir_okay=False, help="Rows (CSV or JSON)."),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="A tabular dataset version ref.")
    ] = None,
    method: MethodOption = "shap",
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Queue a batch explanation of a file's rows or of a dataset version."""
    with connect(ExplainabilityClient, url, api_key, timeout=120.0) as client:
        if (file is None) == (dataset is None):
            raise InvalidError("give exactly one of --file and --dataset", field="file")
        job = client.submit_job(
            model,
            version,
            instances=None if file is None else read_rows(file),
            dataset_ref=dataset,
            method=_method(method),
        )
    _print_job(job)


@job_app.command("status")
def job_status(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow it until it ends.")] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a batch job's status; with --wait, a progress bar until it ends."""
    with connect(ExplainabilityClient, url, api_key, timeout=120.0) as client:
        job = client.get_job(job_id)
        if wait and not job.status.is_final:
            with Progress(console=new_console(), transient=True) as progress:
                task = progress.add_task(f"job {job_id}", total=1.0)
                while not job.status.is_final:
                    progress.update(task, completed=job.progress, description=job.message)
                    time.sleep(0.2)
                    job = client.get_job(job_id)
    _print_job(job)
    if job.status is JobStatus.FAILED:
        raise typer.Exit(1)


@explain_app.command("importance")
def importance(
    job_id: Annotated[str, typer.Argument(help="A succeeded batch job's id.")],
    method: Annotated[str, typer.Option("--method", help="Aggregation method.")] = "mean_abs",
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Print global importance of a job's explanations, with bootstrap intervals."""
    with connect(ExplainabilityClient, url, api_key, timeout=120.0) as client:
        report = client.importance(job_id, method=method)
    level = round(report.confidence_level * 100)
    table = Table(
        "feature",
        "importance",
        f"{level}% CI",
        title=f"{report.method.value} over {report.n_explanations} rows",
    )
    for feature in report.features:
        table.add_row(
            escape(feature.feature),
            f"{feature.importance:.4g}",
            f"[{feature.ci_lower:.4g}, {feature.ci_upper:.4g}]",
        )
    new_console().print(table)


@explain_app.command("plot")
def plot(
    job_id: Annotated[str, typer.Argument(help="A succeeded batch job's id.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Image file (.png or .svg).")],
    kind: Annotated[str, typer.Option("--kind", help="importance or beeswarm.")] = "importance",
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Save a job's importance bar chart or beeswarm plot."""
    with connect(ExplainabilityClient, url, api_key, timeout=120.0) as client:
        suffix = out.suffix.lower().lstrip(".")
        if suffix not in ("png", "svg"):
            raise InvalidError(f"--out must end in .png or .svg. Got {out.name!r}.", field="out")
        if kind not in ("importance", "beeswarm"):
            raise InvalidError(
                f"--kind must be importance or beeswarm. Got {kind!r}.", field="kind"
            )
        data = client.plot(
            job_id,
            "importance" if kind == "importance" else "beeswarm",
            "png" if suffix == "png" else "svg",
        )
    out.write_bytes(data)
    new_console().print(f"Wrote {escape(str(out))} ({len(data)} bytes).")


@explain_app.command("text")
def explain_text(
    model: Annotated[str, typer.Argument(help="The text model's name.")],
    version: VersionOption,
    text: Annotated[str | None, typer.Option("--text", "-t", help="The text to explain.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A UTF-8 file holding the text.")
    ] = None,
    samples: SamplesOption = None,
    seed: SeedOption = None,
    features: FeaturesOption = None,
    bow: Annotated[
        bool,
        typer.Option(
            "--bow/--no-bow",
            help="One feature per distinct word, or (--no-bow) one per occurrence.",
        ),
    ] = True,
    label: LabelOption = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Words shown.")] = 10,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Explain one text with LIME and print the words that weigh most, with their signs."""
    with connect(ExplainabilityClient, url, api_key, timeout=120.0) as client:
        content = read_text(text, file)
        parameters = _lime_parameters(
            n_samples=samples, seed=seed, n_features=features, bow=None if bow else False
        )
        answer = client.explain_text(model, version, content, parameters=parameters)
        output = explained_output(answer, label)
    if as_json:
        print_json(answer)
        return
    console = new_console()
    console.print(heading(answer, output))
    console.print(text_table(answer, output, top))
    console.print(summary(answer, output))


@explain_app.command("image")
def explain_image(
    model: Annotated[str, typer.Argument(help="The image model's name.")],
    image_path: Annotated[Path, typer.Argument(help="A PNG or JPEG file (at most 512 x 512).")],
    version: VersionOption,
    segmenter: Annotated[
        str | None,
        typer.Option("--segmenter", help="Superpixels: quickshift (default) or slic."),
    ] = None,
    segments: Annotated[
        int | None, typer.Option("--segments", help="About how many superpixels (slic only).")
    ] = None,
    hide_color: Annotated[
        float | None,
        typer.Option(
            "--hide-color", help="Fill of hidden superpixels (default: their mean colour)."
        ),
    ] = None,
    samples: SamplesOption = None,
    seed: SeedOption = None,
    features: FeaturesOption = None,
    label: LabelOption = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Segments shown and tinted.")] = 5,
    overlay: Annotated[
        Path | None,
        typer.Option("--overlay", help="Also save the image with its top segments tinted."),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Explain one image with LIME and print the superpixels that weigh most.

    With --overlay (.png or .svg), the image is saved with the --top segments tinted: green
    where they raise the output shown, red where they lower it.
    """
    with connect(ExplainabilityClient, url, api_key, timeout=300.0) as client:
        if segmenter is not None and segmenter not in SEGMENTATIONS:
            raise InvalidError(
                f"--segmenter must be {' or '.join(SEGMENTATIONS)}. Got {segmenter!r}.",
                field="segmenter",
            )
        if overlay is not None:
            _check_overlay(overlay)
        pixels = read_image(image_path)
        parameters = _lime_parameters(
            segmentation=segmenter,
            n_segments=segments,
            hide_color=hide_color,
            n_samples=samples,
            seed=seed,
            n_features=features,
        )
        answer = client.explain_image(model, version, pixels, parameters=parameters)
        output = explained_output(answer, label)
        written = None
        if overlay is not None:
            written = _write_overlay(overlay, pixels, overlay_mask(answer, output, top))
    if as_json:
        print_json(answer)
        return
    console = new_console()
    console.print(heading(answer, output))
    console.print(image_table(answer, output, top))
    console.print(summary(answer, output))
    if written is not None:
        console.print(f"Wrote {escape(str(overlay))} ({written} bytes).")


def _check_overlay(path: Path) -> None:
    """Refuse an overlay path that cannot be written before the image is explained."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise InvalidError(
            f"--overlay must end in .png or .svg. Got {path.name!r}.", field="overlay"
        )
    if not path.parent.is_dir():
        raise InvalidError(
            f"--overlay {path}: the directory {path.parent} does not exist", field="overlay"
        )


def _write_overlay(path: Path, pixels: npt.NDArray[np.float64], mask: npt.NDArray[np.int8]) -> int:
    """Save the image with the masked segments tinted; returns the bytes written."""
    from synapsenet.services.explainability.plots import lime_image_overlay  # slow import

    data = lime_image_overlay(pixels, mask, "svg" if path.suffix.lower() == ".svg" else "png")
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise InvalidError(f"--overlay {path} cannot be written: {exc}", field="overlay") from None
    return len(data)
