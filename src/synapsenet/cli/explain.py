"""``synapsenet explain``: explanations, batch jobs, importance and plots on a running server.

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

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from synapsenet.cli._remote import (
    DEFAULT_URL,
    ApiKeyOption,
    UrlOption,
    connect,
    new_console,
)
from synapsenet.core.jobs import JobStatus
from synapsenet.errors import InvalidError
from synapsenet.services.explainability.client import ExplainabilityClient
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
