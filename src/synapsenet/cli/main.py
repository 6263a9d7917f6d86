"""``synapsenet``: run the server, migrate the database, manage API keys."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from synapsenet import __version__
from synapsenet.cli.data import data_app
from synapsenet.cli.demo import demo
from synapsenet.cli.errors import reporting_errors
from synapsenet.cli.experiment import experiment_app
from synapsenet.cli.explain import explain_app
from synapsenet.cli.models import models_app
from synapsenet.cli.runs import runs_app
from synapsenet.config import load_settings
from synapsenet.core.auth import ApiKeyStore, Role
from synapsenet.core.db import Database
from synapsenet.core.platform import Platform
from synapsenet.gateway import create_app

console = Console(highlight=False)
app = typer.Typer(
    name="synapsenet",
    help="SynapseNet: safe model rollouts, versioned training data, explained predictions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(experiment_app, name="experiment")
app.add_typer(data_app, name="data")
app.add_typer(explain_app, name="explain")
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")
app.command()(demo)


def _version(value: bool) -> None:
    if value:
        console.print(f"synapsenet {__version__}")
        raise typer.Exit


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """SynapseNet command line; settings come from SYNAPSENET_* environment variables."""


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [SYNAPSENET_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [SYNAPSENET_PORT].")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the API server (all services in one process), migrating the database first."""
    with reporting_errors():
        overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
        settings = load_settings(**overrides)
        platform = Platform.open(settings)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    console.print(
        f"SynapseNet {__version__} on [bold]http://{settings.host}:{settings.port}[/] "
        f"(database: {platform.db.dialect}, events: "
        f"{'in-process' if settings.event_bus == 'memory' else 'Redis Streams'}, "
        f"data: {settings.data_dir.resolve()})"
    )
    try:
        uvicorn.run(
            create_app(platform=platform),
            host=settings.host,
            port=settings.port,
            log_level=log_level,
        )
    finally:
        platform.close()


def _open_database() -> Database:
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database.from_settings(settings)
    database.check_reachable()
    return database


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (up to the newest by default)."""
    with reporting_errors():
        database = _open_database()
        before = database.current_revision()
        database.upgrade(revision)
        after = database.current_revision()
        database.dispose()
    if before == after:
        console.print(f"Database already at revision {after}.")
    else:
        console.print(f"Database upgraded from {before or 'empty'} to {after}.")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one this version knows."""
    with reporting_errors():
        database = _open_database()
        current, head = database.current_revision(), database.head_revision()
        database.dispose()
    state = "up to date" if current == head else "needs `synapsenet db upgrade`"
    console.print(f"revision {current or 'none'} (newest {head}): {state}")


def _open_keys() -> tuple[Database, ApiKeyStore]:
    database = _open_database()
    database.upgrade()
    return database, ApiKeyStore(database)


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="What the key may do.")] = Role.VIEWER,
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
) -> None:
    """Create an API key and print its token (shown once; store it now)."""
    with reporting_errors():
        database, keys = _open_keys()
        created = keys.create(role, name=name)
        database.dispose()
    console.print(
        Panel(
            created.token,
            title=f"{created.key.role.value} key {created.key.id}",
            subtitle="shown once: store it now",
        )
    )


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List API keys (never their secrets)."""
    with reporting_errors():
        database, keys = _open_keys()
        listed = keys.list(include_revoked=all_keys)
        database.dispose()
    table = Table("role", "name", "created", "last used", "revoked")
    table.add_column("id", no_wrap=True, min_width=16)
    for key in listed:
        table.add_row(
            key.role.value,
            key.name,
            key.created_at.strftime("%Y-%m-%d %H:%M"),
            key.last_used_at.strftime("%Y-%m-%d %H:%M") if key.last_used_at else "-",
            key.revoked_at.strftime("%Y-%m-%d %H:%M") if key.revoked_at else "-",
            key.id,
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id.")]) -> None:
    """Revoke an API key; it authenticates nothing from then on."""
    with reporting_errors():
        database, keys = _open_keys()
        revoked = keys.revoke(key_id)
        database.dispose()
    console.print(f"Revoked {revoked.role.value} key {revoked.id}.")


def main() -> None:
    """Entry point of the ``synapsenet`` command."""
    app()
