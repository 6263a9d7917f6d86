"""``synapsenet demo``: the whole story against a running server."""

from __future__ import annotations

from typing import Annotated

import typer

from synapsenet.cli._remote import ApiKeyOption, UrlOption, new_console, resolve_api_key
from synapsenet.cli.errors import reporting_errors


def demo(
    url: UrlOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
    scenario: Annotated[
        str,
        typer.Option(
            help="'rollback': the candidate degrades a guardrail and is rolled back; "
            "'promote': it wins and is promoted.",
        ),
    ] = "rollback",
    requests: Annotated[
        int, typer.Option(min=200, help="Most simulated prediction requests.")
    ] = 6000,
    prefix: Annotated[
        str | None,
        typer.Option(
            help="Prefix of the datasets, model and experiment created "
            "[default: demo, or demo-promote for --scenario promote].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated data and models.")] = 7,
) -> None:
    """Tell the whole story against a running server (start one with `make run`)."""
    if scenario not in ("rollback", "promote"):
        raise typer.BadParameter("must be 'rollback' or 'promote'", param_hint="--scenario")
    # Imported here: the story pulls in pandas and scikit-learn, which no other command needs.
    from synapsenet.demo.story import DemoFailedError, DemoOptions, DemoStory, Scenario
    from synapsenet.sdk import Client

    console = new_console()
    chosen: Scenario = "rollback" if scenario == "rollback" else "promote"
    # Each scenario commits different feature data, so each has its own names by default.
    names = prefix or ("demo" if chosen == "rollback" else "demo-promote")
    options = DemoOptions(scenario=chosen, requests=requests, prefix=names, seed=seed)
    with reporting_errors(), Client(url, resolve_api_key(api_key), timeout=60.0) as client:
        try:
            DemoStory(client, console, options).run()
        except DemoFailedError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
