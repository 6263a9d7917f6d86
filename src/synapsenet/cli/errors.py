"""How the CLI reports errors: one red line, and an exit code, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from synapsenet.errors import ConfigurationError, SynapseNetError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_FAILURE = 1
EXIT_CONFIGURATION = 2


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn SynapseNet errors raised inside the block into one line on stderr and an exit.

    Raises:
        typer.Exit: With code 2 for configuration errors, 1 for any other SynapseNet error.
    """
    try:
        yield
    except ConfigurationError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True)
        raise typer.Exit(EXIT_CONFIGURATION) from None
    except SynapseNetError as exc:
        err_console.print(f"[bold red]error:[/] {exc.detail}", markup=True)
        raise typer.Exit(EXIT_FAILURE) from None
