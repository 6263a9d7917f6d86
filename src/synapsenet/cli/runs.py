"""``synapsenet runs``: training runs tracked on a running server.

Every command talks to the server through :class:`RunsClient`. The server is ``--url``
(``SYNAPSENET_URL``); the key is ``--api-key`` (``SYNAPSENET_API_KEY``), else the admin key
``synapsenet serve`` wrote under the data directory on its first start.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from synapsenet.cli._remote import (
    DEFAULT_URL,
    ApiKeyOption,
    JsonOption,
    UrlOption,
    connect,
    new_console,
    print_json,
)
from synapsenet.services.experiments.api import parse_param_filter
from synapsenet.services.experiments.client import RunsClient
from synapsenet.services.experiments.models import Run, RunStatus
from synapsenet.services.experiments.schemas import RunPublic

runs_app = typer.Typer(
    help="Training runs: params, metrics, datasets read, models produced.", no_args_is_help=True
)

_STATUS_STYLE = {
    RunStatus.RUNNING: "yellow",
    RunStatus.FINISHED: "green",
    RunStatus.FAILED: "red",
    RunStatus.KILLED: "dim",
}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def _status(status: RunStatus) -> str:
    return f"[{_STATUS_STYLE[status]}]{status.value}[/]"


def _metrics_text(run: Run, most: int = 3) -> str:
    shown = [f"{escape(k)}={v:.4g}" for k, v in list(run.metrics.items())[:most]]
    more = len(run.metrics) - most
    return ", ".join(shown) + (f" (+{more})" if more > 0 else "") if shown else "-"


@runs_app.command("list")
def list_runs(
    project: Annotated[str | None, typer.Option(help="Only runs of this project.")] = None,
    status: Annotated[RunStatus | None, typer.Option(help="Only runs in this status.")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="key=value; only runs with this param (repeatable).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Only runs that read this version (name@vN) or dataset.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Only runs that produced this model (name or name@version).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most runs shown.")] = 50,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """List runs, newest first."""
    with connect(RunsClient, url, api_key, timeout=30.0) as client:
        params = dict(parse_param_filter(p) for p in param or ())
        runs = client.list_runs(
            project=project, status=status, params=params, dataset=dataset, model=model, limit=limit
        )
    if as_json:
        print_json([RunPublic.of(r) for r in runs])
        return
    console = new_console()
    if not runs:
        console.print("No runs.")
        return
    table = Table("project", "name", "status", "started", "metrics", "datasets", "models")
    table.add_column("id", no_wrap=True, min_width=32)
    for run in runs:
        table.add_row(
            escape(run.project),
            escape(run.name),
            _status(run.status),
            _when(run.started_at),
            _metrics_text(run),
            escape(", ".join(run.dataset_refs)) or "-",
            escape(", ".join(m.ref for m in run.models)) or "-",
            run.id,
        )
    console.print(table)


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a run: params, latest metrics, tags, datasets read and models produced."""
    with connect(RunsClient, url, api_key, timeout=30.0) as client:
        run = client.get_run(run_id)
    if as_json:
        print_json(RunPublic.of(run))
        return
    console = new_console()
    console.print(
        f"Run [bold]{escape(run.name)}[/] ({run.id}) in project {escape(run.project)}: "
        f"{_status(run.status)}; started {_when(run.started_at)}, ended {_when(run.ended_at)}."
    )
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        ("param", [(k, json.dumps(v)) for k, v in run.params.items()]),
        ("metric (latest)", [(k, f"{v:.6g}") for k, v in run.metrics.items()]),
        ("tag", list(run.tags.items())),
        ("dataset read", [(d.ref, f"logged as {d.requested}") for d in run.datasets]),
        ("model produced", [(m.ref, f"logged {_when(m.logged_at)}") for m in run.models]),
    ]
    for title, rows in sections:
        if not rows:
            console.print(f"No {title.split(' ')[0]}s.")
            continue
        table = Table(title, "value")
        for key, value in rows:
            table.add_row(escape(key), escape(value))
        console.print(table)
