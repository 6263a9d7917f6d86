"""``synapsenet experiment``: A/B tests and canary rollouts on a running server.

Every command talks to the server through :class:`ABTestingClient`, so it works the same
against a local ``synapsenet serve`` and a remote deployment. The server is ``--url``
(``SYNAPSENET_URL``); the key is ``--api-key`` (``SYNAPSENET_API_KEY``), else the admin key
``synapsenet serve`` wrote under the data directory on its first start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from synapsenet.cli import _experiment_views as views
from synapsenet.cli._remote import (
    DEFAULT_URL,
    ApiKeyOption,
    JsonOption,
    UrlOption,
    connect,
    new_console,
    print_json,
)
from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.client import ABTestingClient
from synapsenet.services.abtesting.models import ExperimentStatus
from synapsenet.services.abtesting.schemas import ExperimentPublic
from synapsenet.services.abtesting.statistics.results import CorrectionMethod

experiment_app = typer.Typer(
    help="A/B tests and canary rollouts (talks to a running server).", no_args_is_help=True
)

IdArgument = Annotated[str, typer.Argument(help="The experiment's id or name.")]


def _changed(experiment: ExperimentPublic, what: str) -> None:
    new_console().print(
        f"Experiment {escape(experiment.name)} ({experiment.id}) {what}; "
        f"status [bold]{experiment.status.value}[/]."
    )


# ---------------------------------------------------------------------- definition


@experiment_app.command("create")
def create(
    file: Annotated[
        Path,
        typer.Option(
            "--file", "-f", exists=True, dir_okay=False, help="JSON spec (the API's body)."
        ),
    ],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Create an experiment from a JSON spec; it starts in draft."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        try:
            spec = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidError(f"{file} is not valid JSON: {exc}", field="file") from None
        if not isinstance(spec, dict):
            raise InvalidError(f"{file} must hold a JSON object", field="file")
        created = client.create_experiment(spec)
    _changed(created, "created")
    views.print_experiment(new_console(), created)


@experiment_app.command("list")
def list_experiments(
    status: Annotated[
        ExperimentStatus | None, typer.Option(help="Only experiments in this status.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only experiments on this model.")] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """List experiments, newest first."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        experiments = client.list_experiments(status=status, model_name=model)
    if as_json:
        print_json(list(experiments))
        return
    console = new_console()
    if not experiments:
        console.print("No experiments.")
        return
    table = Table("name", "model", "status", "strategy", "allocation", "created")
    table.add_column("id", no_wrap=True, min_width=16)
    for e in experiments:
        table.add_row(
            escape(e.name),
            escape(e.model_name),
            views.status_text(e.status),
            e.strategy.value,
            views.allocation_text(e),
            views.when(e.created_at),
            e.id,
        )
    console.print(table)


@experiment_app.command("show")
def show(
    experiment_id: IdArgument,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show an experiment: variants, metrics, ramp and current allocation."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        experiment = client.get_experiment(experiment_id)
    if as_json:
        print_json(experiment)
        return
    views.print_experiment(new_console(), experiment)


# ---------------------------------------------------------------------- lifecycle


@experiment_app.command("start")
def start(
    experiment_id: IdArgument, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None
) -> None:
    """Start a draft experiment: traffic starts flowing."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        _changed(client.start(experiment_id), "started")


@experiment_app.command("pause")
def pause(
    experiment_id: IdArgument, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None
) -> None:
    """Pause a running experiment: every unit gets the control."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        _changed(client.pause(experiment_id), "paused")


@experiment_app.command("resume")
def resume(
    experiment_id: IdArgument, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None
) -> None:
    """Resume a paused experiment."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        _changed(client.resume(experiment_id), "resumed")


@experiment_app.command("stop")
def stop(
    experiment_id: IdArgument,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Stop without a winner; all traffic returns to the control."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        _changed(client.stop(experiment_id, reason=reason), "stopped")


@experiment_app.command("complete")
def complete(
    experiment_id: IdArgument,
    winner: Annotated[
        str | None, typer.Option(help="Winning variant; its model version is promoted.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Complete an experiment, optionally naming the winner."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        completed = client.complete(experiment_id, winner=winner)
    _changed(completed, f"completed (winner: {escape(winner)})" if winner else "completed")


@experiment_app.command("rollback")
def rollback(
    experiment_id: IdArgument,
    reason: Annotated[str, typer.Option(help="Why; recorded in the decision log.")],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Roll back by hand: all traffic to the control, recorded with the reason."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        _changed(client.rollback(experiment_id, reason=reason), "rolled back")


# ---------------------------------------------------------------------- ramps


@experiment_app.command("ramp")
def ramp(
    experiment_id: IdArgument,
    force: Annotated[
        bool, typer.Option("--force", help="Advance even if the step's minimums are unmet.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Advance a ramp to its next step when its minimums are met (or with --force)."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        decision = client.ramp(experiment_id, force=force)
    new_console().print(views.ramp_text(decision))


@experiment_app.command("hold")
def hold(
    experiment_id: IdArgument,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Hold a ramp at its current step."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        _changed(client.hold(experiment_id, reason=reason), "ramp held")


@experiment_app.command("release")
def release(
    experiment_id: IdArgument,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Release a held ramp."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        _changed(client.release(experiment_id, reason=reason), "ramp released")


# ---------------------------------------------------------------------- routing and reading


@experiment_app.command("assign")
def assign(
    experiment_id: IdArgument,
    unit_id: Annotated[str, typer.Argument(help="The unit (user, request) to route.")],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show the variant a unit gets."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        assignment = client.assign(experiment_id, unit_id)
    note = "" if assignment.in_experiment else " (outside the running experiment: control)"
    new_console().print(
        f"{escape(unit_id)} -> [bold]{escape(assignment.variant)}[/] "
        f"(model version {escape(assignment.model_version)}){note}"
    )


@experiment_app.command("results")
def results(
    experiment_id: IdArgument,
    fixed_horizon: Annotated[
        bool,
        typer.Option("--fixed-horizon", help="Classic tests, valid at one planned look only."),
    ] = False,
    correction: Annotated[
        CorrectionMethod, typer.Option(help="Multiple-testing correction.")
    ] = CorrectionMethod.HOLM,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Results: every metric of every treatment against the control, lifts and p-values."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        page = client.results(experiment_id, sequential=not fixed_horizon, correction=correction)
    if as_json:
        print_json(page)
        return
    views.print_results(new_console(), page)


@experiment_app.command("decisions")
def decisions(
    experiment_id: IdArgument,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """The decision log: rollbacks, guardrail checks, ramps, reweights."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        log = client.decisions(experiment_id, limit=limit)
    if as_json:
        print_json(list(log))
        return
    views.print_decisions(new_console(), log)


@experiment_app.command("check")
def check(
    experiment_id: IdArgument,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Check now: guardrails (may roll back), then advance the ramp or reweight the bandit."""
    with connect(ABTestingClient, url, api_key, timeout=30.0) as client:
        report = client.check(experiment_id)
    if as_json:
        print_json(report)
        return
    views.print_tick(new_console(), report)
