"""What every command that talks to a running server shares: options, client, output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console

from synapsenet.cli.errors import reporting_errors
from synapsenet.config import load_settings
from synapsenet.core.client import ServiceClient

DEFAULT_URL = "http://127.0.0.1:8000"

UrlOption = Annotated[str, typer.Option("--url", envvar="SYNAPSENET_URL", help="Server base URL.")]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="SYNAPSENET_API_KEY",
        help="API key; default: the admin key in the data directory.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON answer.")]

ClientT = TypeVar("ClientT", bound=ServiceClient)


def new_console() -> Console:
    """A console for this command (built per command, so this invocation's width applies)."""
    return Console(highlight=False)


def resolve_api_key(given: str | None) -> str | None:
    """The key given, else the admin key ``synapsenet serve`` wrote on its first start."""
    if given:
        return given
    path = load_settings().admin_key_path
    return path.read_text().strip() if path.is_file() else None


@contextmanager
def connect(
    client_class: type[ClientT], url: str, api_key: str | None, *, timeout: float
) -> Iterator[ClientT]:
    """An open client; any SynapseNet error inside becomes one red line and exit 1."""
    with (
        reporting_errors(),
        client_class(url, api_key=resolve_api_key(api_key), timeout=timeout) as client,
    ):
        yield client


def print_json(data: BaseModel | list[Any]) -> None:
    """Print an API answer as indented JSON (plain: Rich would reflow it and read markup)."""
    if isinstance(data, BaseModel):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(
            [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data], indent=2
        )
    typer.echo(text)
