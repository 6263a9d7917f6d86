"""``synapsenet data``: versioned datasets on a running server.

Every command talks to the server through :class:`DataVersionClient`, so it works the same
against a local ``synapsenet serve`` and a remote deployment. The server is ``--url``
(``SYNAPSENET_URL``); the key is ``--api-key`` (``SYNAPSENET_API_KEY``), else the admin key
``synapsenet serve`` wrote under the data directory on its first start.

Versions are named ``name@v3``, ``name@<tag>`` or just ``name`` (the newest). Uploads and
downloads show a progress bar of bytes; every file checked out is verified against the
BLAKE3 its manifest records before it takes its real name.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from synapsenet.cli import _data_views as views
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
from synapsenet.services.dataversion.chunks import validate_path
from synapsenet.services.dataversion.client import DataVersionClient, file_blake3, split_ref
from synapsenet.services.dataversion.schema import CompatibilityMode
from synapsenet.services.dataversion.tabular import DatasetFormat

data_app = typer.Typer(
    help="Versioned datasets: commit, log, checkout, diff, lineage (talks to a running server).",
    no_args_is_help=True,
)

RefArgument = Annotated[
    str, typer.Argument(help="A version: name@v3, name@<tag>, name, or dataset:name@v3.")
]


# ---------------------------------------------------------------------- datasets


@data_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The dataset's name.")],
    format: Annotated[DatasetFormat, typer.Option("--format", "-f", help="Its files' format.")],
    compatibility: Annotated[
        CompatibilityMode, typer.Option(help="Schema changes each commit may make.")
    ] = CompatibilityMode.BACKWARD,
    description: Annotated[str, typer.Option(help="What it holds.")] = "",
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Create an empty dataset."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        created = client.create_dataset(
            name, format=format.value, compatibility=compatibility.value, description=description
        )
    new_console().print(
        f"Created dataset [bold]{escape(created.name)}[/] ({created.format.value}, "
        f"{created.compatibility.value} compatibility)."
    )


@data_app.command("list")
def list_datasets(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None
) -> None:
    """List datasets."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        datasets = client.list_datasets()
    if as_json:
        print_json(list(datasets))
        return
    views.print_datasets(new_console(), datasets)


# ---------------------------------------------------------------------- commits


@data_app.command("commit")
def commit(
    source: Annotated[
        Path, typer.Argument(exists=True, help="A file, or a directory (every file under it).")
    ],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="The dataset to commit to.")],
    message: Annotated[str, typer.Option("--message", "-m", help="What changed.")] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Tag the new version (repeatable).")
    ] = None,
    author: Annotated[str | None, typer.Option(help="Default: the API key's name.")] = None,
    parent: Annotated[
        str, typer.Option(help="'head', or the version this builds on (conflict if moved).")
    ] = "head",
    path: Annotated[
        str | None, typer.Option("--path", help="The file's path in the version (files only).")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Upload a file or directory and commit it as the dataset's next version."""
    console = new_console()
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        # Fail fast on a missing dataset or a bad path, before sending any bytes.
        client.get_dataset(dataset)
        with views.transfer(console) as bar:
            if source.is_dir():
                if path is not None:
                    raise InvalidError(
                        "--path names a single file; a directory's files keep their own paths",
                        field="path",
                    )
                bar.phase("packing", None)
                version = client.upload_directory(
                    dataset,
                    source,
                    progress=bar.advance,
                    on_packed=lambda total: bar.phase("uploading", total),
                    message=message,
                    author=author,
                    parent=parent,
                    tags=tag or [],
                )
            else:
                name = validate_path(path or source.name)
                total = source.stat().st_size
                bar.phase("hashing", total)
                digest = file_blake3(source, progress=bar.advance)
                bar.phase("uploading", total)
                version = client.upload_file(
                    dataset,
                    source,
                    path=name,
                    blake3_digest=digest,
                    progress=bar.advance,
                    message=message,
                    author=author,
                    parent=parent,
                    tags=tag or [],
                )
    if version.created:
        console.print(f"Committed {views.version_line(version)}.")
    else:
        console.print(f"Nothing changed: the content equals {views.version_line(version)}.")


@data_app.command("log")
def log(
    name: Annotated[str, typer.Argument(help="The dataset.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Only the newest N.")] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """A dataset's versions, newest first."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        versions = client.log(name, limit=limit)
    if as_json:
        print_json(list(versions))
        return
    views.print_log(new_console(), versions)


@data_app.command("show")
def show(
    ref: RefArgument,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """One version: metadata, schema and statistics, files."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        name, at = split_ref(ref)
        version = client.get_version(name, at)
        if as_json:
            print_json(version)
            return
        files = client.files(name, at)
        stats = client.stats(name, at)
    views.print_version(new_console(), version, files, stats)


@data_app.command("checkout")
def checkout(
    ref: RefArgument,
    destination: Annotated[Path, typer.Argument(help="Directory to write into.")],
    path: Annotated[
        list[str] | None, typer.Option("--path", help="Only this file (repeatable).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Download a version's exact bytes, each file verified against its BLAKE3."""
    console = new_console()
    with (
        connect(DataVersionClient, url, api_key, timeout=60.0) as client,
        views.transfer(console) as bar,
    ):
        name, at = split_ref(ref)
        written = client.checkout(
            name,
            at,
            destination,
            paths=path,
            overwrite=force,
            progress=bar.advance,
            on_plan=lambda files: bar.phase("downloading", sum(f.size for f in files)),
        )
    console.print(
        f"Checked out {len(written)} file(s) of {escape(ref)} into {escape(str(destination))}; "
        "every BLAKE3 matched the manifest."
    )


@data_app.command("diff")
def diff(
    old: RefArgument,
    new: Annotated[str, typer.Argument(help="The newer version: name@v4, or just v4.")],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Files, schema and rows changed between two versions of a dataset."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        name, old_at = split_ref(old)
        new_name, new_at = split_ref(new if "@" in new else f"{name}@{new}")
        if new_name != name:
            raise InvalidError(
                f"diff compares two versions of one dataset, not {name} and {new_name}",
                field="new",
            )
        result = client.diff(name, old_at, new_at)
    if as_json:
        print_json(result)
        return
    views.print_diff(new_console(), result)


@data_app.command("tag")
def tag(
    ref: RefArgument,
    name: Annotated[str, typer.Argument(help="The tag, e.g. production.")],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Point a tag at a version (moving it if it pointed elsewhere)."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        dataset, at = split_ref(ref)
        version = client.tag(dataset, at, name)
    new_console().print(f"Tagged {views.version_line(version)}.")


@data_app.command("untag")
def untag(
    dataset: Annotated[str, typer.Argument(help="The dataset.")],
    name: Annotated[str, typer.Argument(help="The tag.")],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Remove a tag."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        client.untag(dataset, name)
    new_console().print(f"Removed tag {escape(name)} from {escape(dataset)}.")


@data_app.command("as-of")
def as_of(
    dataset: Annotated[str, typer.Argument(help="The dataset.")],
    timestamp: Annotated[
        str, typer.Argument(help="ISO 8601 with a timezone, e.g. 2024-05-01T12:00:00Z.")
    ],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """The version that was current at a moment."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        try:
            moment = datetime.fromisoformat(timestamp)
        except ValueError:
            raise InvalidError(
                f"{timestamp!r} is not an ISO 8601 timestamp", field="timestamp"
            ) from None
        version = client.as_of(dataset, moment)
    new_console().print(f"At {escape(timestamp)}: {views.version_line(version)}.")


# ---------------------------------------------------------------------- integrity


@data_app.command("verify")
def verify(ref: RefArgument, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None) -> None:
    """Check every byte of a version against its hashes on the server (exit 1 if damaged)."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        dataset, at = split_ref(ref)
        report = client.verify(dataset, at)
    console = new_console()
    if report.ok:
        console.print(
            f"[green]{escape(report.ref)} is intact[/]: {report.files} file(s), "
            f"{report.chunks} chunk(s) verified."
        )
        return
    console.print(f"[bold red]{escape(report.ref)} is damaged[/]:")
    for problem in report.problems:
        console.print(f"  {escape(problem)}")
    raise typer.Exit(1)


@data_app.command("gc")
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
    grace: Annotated[
        float,
        typer.Option(
            min=0,
            help="Delete unreferenced chunks condemned by a run this long ago (seconds); "
            "condemn the others.",
        ),
    ] = 3600.0,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete chunks no version references.

    A run condemns the unreferenced chunks it finds, and a run at least the grace period
    later deletes those still unreferenced: commits in flight keep what they reuse.
    """
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        report = client.gc(grace_seconds=grace, dry_run=dry_run)
    verb = "Would delete" if report.dry_run else "Deleted"
    new_console().print(
        f"{verb} {report.deleted} chunk(s), {views.size(report.bytes_freed)}, and "
        f"{report.stats_deleted} stale statistics and {report.cuts_deleted} stale cut "
        "object(s); kept "
        f"{report.kept_referenced} referenced and {report.kept_recent} condemned (a gc "
        "after the grace period deletes those still unreferenced)."
    )


@data_app.command("deprecate")
def deprecate(
    ref: RefArgument,
    reason: Annotated[str, typer.Option(help="Why it must no longer be used.")],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Deprecate a version and show what it affects downstream."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        dataset, at = split_ref(ref)
        result = client.deprecate(dataset, at, reason=reason)
    console = new_console()
    console.print(f"[red]Deprecated[/] {views.version_line(result.version)}.")
    views.print_impact(console, result.impact)


# ---------------------------------------------------------------------- lineage


@data_app.command("lineage")
def lineage(
    ref: RefArgument,
    down: Annotated[
        bool, typer.Option("--down/--up", help="Descendants, or ancestors (default).")
    ] = False,
    depth: Annotated[int | None, typer.Option(min=1, help="At most this many edges.")] = None,
    format: Annotated[
        Literal["tree", "dot", "mermaid"], typer.Option("--format", help="tree, dot or mermaid.")
    ] = "tree",
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Where a version came from (--up) or what it fed (--down)."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        dataset, at = split_ref(ref)
        if format != "tree":
            typer.echo(client.lineage_graph(dataset, at, format=format, depth=depth))
            return
        result = client.lineage(dataset, at, direction="down" if down else "up", depth=depth)
    if as_json:
        print_json(result)
        return
    new_console().print(views.lineage_tree(result))


@data_app.command("impact")
def impact(
    ref: RefArgument,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Every dataset version, run and model downstream of a version."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        dataset, at = split_ref(ref)
        report = client.impact(dataset, at)
    if as_json:
        print_json(report)
        return
    views.print_impact(new_console(), report)


@data_app.command("link")
def link(
    source: Annotated[
        str, typer.Argument(help="dataset:<name>@v<N>, run:<id> or model:<name>@<v>.")
    ],
    target: Annotated[str, typer.Argument(help="Likewise.")],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Record that a run read a dataset version, or produced a model version."""
    with connect(DataVersionClient, url, api_key, timeout=60.0) as client:
        linked = client.link(source, target)
    new_console().print(f"Linked {escape(linked.source)} -> {escape(linked.target)}.")
