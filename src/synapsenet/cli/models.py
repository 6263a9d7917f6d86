"""``synapsenet models``: the model registry on a running server.

Every command talks to the server through :class:`ModelRegistryClient`. The server is
``--url`` (``SYNAPSENET_URL``); the key is ``--api-key`` (``SYNAPSENET_API_KEY``), else the
admin key ``synapsenet serve`` wrote under the data directory on its first start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
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
from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.registry.client import ModelRegistryClient
from synapsenet.services.registry.models import ModelFlavor, ModelStage, OutputKind
from synapsenet.services.registry.schemas import VersionPublic

models_app = typer.Typer(
    help="Registered models: versions, stages, promotion (talks to a running server).",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="The model's name.")]
VersionArgument = Annotated[str, typer.Argument(help="The version (3 or v3).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded in the event).")]


def _when(version: VersionPublic) -> str:
    return version.created_at.strftime("%Y-%m-%d %H:%M")


@models_app.command("list")
def list_models(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None
) -> None:
    """List registered models with their newest and production versions."""
    with connect(ModelRegistryClient, url, api_key, timeout=30.0) as client:
        models = client.list_models()
    if as_json:
        print_json(models)
        return
    if not models:
        new_console().print("No models.")
        return
    table = Table("name", "versions", "production", "created", "description")
    for model in models:
        table.add_row(
            escape(model.name),
            str(model.latest_version),
            model.production_version or "-",
            model.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(model.description),
        )
    new_console().print(table)


@models_app.command("show")
def show(
    name: NameArgument,
    version: Annotated[str | None, typer.Argument(help="One version (default: all).")] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a model's versions, or one version's signature, metrics and lineage."""
    with connect(ModelRegistryClient, url, api_key, timeout=30.0) as client:
        if version is not None:
            found = client.get_version(name, version)
            if as_json:
                print_json(found)
            else:
                _print_version(found)
            return
        versions = client.list_versions(name)
    if as_json:
        print_json(versions)
        return
    if not versions:
        new_console().print(f"Model {escape(name)} has no versions yet.")
        return
    table = Table("version", "stage", "flavor", "created", "metrics", "run")
    for item in versions:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(item.metrics.items()))
        table.add_row(
            item.version,
            item.stage.value,
            item.flavor.value,
            _when(item),
            escape(metrics),
            escape(item.run_id or "-"),
        )
    new_console().print(table)


def _print_version(version: VersionPublic) -> None:
    console = new_console()
    signature = version.signature
    types = signature.feature_types or []
    features = ", ".join(
        f"{n} ({t.value})" for n, t in zip(signature.feature_names, types, strict=False)
    )
    lines = [
        f"[bold]{escape(version.model_name)}@{version.version}[/]  {version.stage.value}",
        f"flavor     {version.flavor.value}{' (trusted)' if version.trusted else ''}",
        f"artifact   {version.artifact_hash} ({version.artifact_size} bytes)",
        f"features   {escape(features)}",
        f"output     {signature.output_kind.value}"
        + (f" {escape(str(signature.output_names))}" if signature.output_names else ""),
        f"metrics    {escape(json.dumps(version.metrics, sort_keys=True))}",
        f"datasets   {escape(', '.join(version.training_datasets) or '-')}",
        f"run        {escape(version.run_id or '-')}",
        f"created    {_when(version)}",
    ]
    console.print("\n".join(lines))


def _metrics(pairs: list[str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep or not key:
                raise ValueError(pair)
            metrics[key] = float(value)
        except ValueError:
            raise InvalidError(
                f"--metric takes name=value with a number. Got {pair!r} instead.", field="metric"
            ) from None
    return metrics


def _signature(
    signature_file: Path | None,
    features: str | None,
    output_kind: OutputKind | None,
    output_names: str | None,
) -> dict[str, Any]:
    if signature_file is not None:
        try:
            loaded = json.loads(signature_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InvalidError(
                f"{signature_file} is not valid JSON: {exc}", field="signature"
            ) from None
        if not isinstance(loaded, dict):
            raise InvalidError(f"{signature_file} must hold a JSON object", field="signature")
        return loaded
    if features is None or output_kind is None:
        raise InvalidError(
            "give --signature FILE, or --features a,b,c with --output-kind", field="signature"
        )
    signature: dict[str, Any] = {
        "feature_names": [f.strip() for f in features.split(",") if f.strip()],
        "output_kind": output_kind.value,
    }
    if output_names is not None:
        signature["output_names"] = [n.strip() for n in output_names.split(",")]
    return signature


@models_app.command("register")
def register(
    name: NameArgument,
    file: Annotated[
        Path,
        typer.Option("--file", "-f", exists=True, dir_okay=False, help="The serialised model."),
    ],
    flavor: Annotated[ModelFlavor, typer.Option("--flavor", help="How it is serialised.")],
    signature_file: Annotated[
        Path | None,
        typer.Option("--signature", exists=True, dir_okay=False, help="Signature JSON file."),
    ] = None,
    features: Annotated[
        str | None, typer.Option("--features", help="Feature names, comma-separated.")
    ] = None,
    output_kind: Annotated[
        OutputKind | None, typer.Option("--output-kind", help="What the model predicts.")
    ] = None,
    output_names: Annotated[
        str | None, typer.Option("--output-names", help="Class labels, comma-separated.")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="name=value (repeatable).")
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Training data name@vN (repeatable).")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="The training run.")] = None,
    background: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Background rows (.npy, no pickle)."),
    ] = None,
    description: Annotated[str, typer.Option(help="What changed.")] = "",
    trusted: Annotated[
        bool, typer.Option("--trusted", help="Vouch for the artifact (required for pickle).")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Upload a serialised model as the next version (the model is created if new)."""
    with connect(ModelRegistryClient, url, api_key, timeout=120.0) as client:
        signature = _signature(signature_file, features, output_kind, output_names)
        rows = None
        if background is not None:
            try:
                rows = np.load(background, allow_pickle=False).tolist()
            except ValueError as exc:
                raise InvalidError(f"{background}: {exc}", field="background") from None
        try:
            client.get_model(name)
        except NotFoundError:
            client.create_model(name)
        version = client.register_version(
            name,
            file,
            flavor=flavor,
            signature=signature,
            metrics=_metrics(metric or []),
            training_datasets=dataset or [],
            run_id=run_id,
            background=rows,
            description=description,
            trusted=trusted,
        )
    if as_json:
        print_json(version)
        return
    new_console().print(
        f"Registered {escape(version.model_name)}@{version.version} "
        f"({version.flavor.value}, {version.artifact_size} bytes, {version.artifact_hash[:12]})."
    )


@models_app.command("promote")
def promote(
    name: NameArgument,
    version: VersionArgument,
    reason: ReasonOption,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Make a version the production version; the previous one is archived."""
    with connect(ModelRegistryClient, url, api_key, timeout=30.0) as client:
        moved = client.promote(name, version, reason=reason)
    new_console().print(f"{escape(moved.model_name)}@{moved.version} is now in production.")


@models_app.command("demote")
def demote(
    name: NameArgument,
    version: VersionArgument,
    reason: ReasonOption,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Take a version out of service (archived)."""
    with connect(ModelRegistryClient, url, api_key, timeout=30.0) as client:
        moved = client.demote(name, version, reason=reason)
    new_console().print(f"{escape(moved.model_name)}@{moved.version} is archived.")


@models_app.command("stage")
def stage(
    name: NameArgument,
    version: VersionArgument,
    target: Annotated[ModelStage, typer.Argument(help="staging, production or archived.")],
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Move a version to a stage."""
    with connect(ModelRegistryClient, url, api_key, timeout=30.0) as client:
        moved = client.transition(name, version, target, reason=reason)
    new_console().print(f"{escape(moved.model_name)}@{moved.version} is {moved.stage.value}.")
