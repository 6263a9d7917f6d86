"""Rich renderings of data versioning answers, and transfer progress, for ``synapsenet data``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.tree import Tree

from synapsenet.services.dataversion.schemas import (
    DatasetPublic,
    DiffPublic,
    FilePublic,
    ImpactPublic,
    LineagePublic,
    StatsPublic,
    VersionPublic,
)


def when(moment: datetime | None) -> str:
    """A UTC timestamp to the second, or ``-``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def size(count: int | None) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ``190.3 MiB``."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Transfer:
    """A Rich progress bar of bytes moved, one task per phase (hashing, uploading...).

    Args:
        progress: The running progress display.
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def phase(self, description: str, total: int | None) -> None:
        """Start a new phase (the previous one is marked done)."""
        self.finish()
        self.task = self.progress.add_task(description, total=total)

    def advance(self, count: int) -> None:
        """Count ``count`` more bytes in the current phase."""
        if self.task is not None:
            self.progress.advance(self.task, count)

    def finish(self) -> None:
        """Mark the current phase complete."""
        if self.task is not None:
            task = self.progress.tasks[self.task]
            if task.total is not None:
                self.progress.update(self.task, completed=task.total)
            self.task = None


@contextmanager
def transfer(console: Console) -> Iterator[Transfer]:
    """A progress display of bytes with speed and time remaining, for long transfers."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        current = Transfer(progress)
        yield current
        current.finish()


def print_datasets(console: Console, datasets: list[DatasetPublic]) -> None:
    """The datasets as a table."""
    if not datasets:
        console.print("No datasets.")
        return
    table = Table("name", "format", "compatibility", "head", "created", "description")
    for d in datasets:
        table.add_row(
            escape(d.name),
            d.format.value,
            d.compatibility.value,
            f"v{d.head}" if d.head else "-",
            when(d.created_at),
            escape(d.description),
        )
    console.print(table)


def version_line(version: VersionPublic) -> str:
    """``orders@v2 (3 files, 1.2 MiB, 1,050 rows) [golden]``."""
    parts = [f"{version.files} file{'' if version.files == 1 else 's'}", size(version.size)]
    if version.rows is not None:
        parts.append(f"{version.rows:,} rows")
    tags = " " + escape(f"[{', '.join(version.tags)}]") if version.tags else ""
    return f"[bold]{escape(version.ref)}[/] ({', '.join(parts)}){tags}"


def print_log(console: Console, versions: list[VersionPublic]) -> None:
    """A dataset's history, newest first."""
    if not versions:
        console.print("No versions yet.")
        return
    table = Table("version", "committed", "author", "files", "size", "rows", "tags", "message")
    for v in versions:
        label = f"v{v.number}"
        if v.deprecated_at is not None:
            label += " [red](deprecated)[/]"
        table.add_row(
            label,
            when(v.committed_at),
            escape(v.author),
            str(v.files),
            size(v.size),
            f"{v.rows:,}" if v.rows is not None else "-",
            escape(", ".join(v.tags)),
            escape(v.message),
        )
    console.print(table)


def print_version(
    console: Console, version: VersionPublic, files: list[FilePublic], stats: StatsPublic
) -> None:
    """One version: its metadata, schema, statistics and files."""
    console.print(version_line(version))
    console.print(f"root       {version.root}")
    console.print(f"committed  {when(version.committed_at)} by {escape(version.author) or '-'}")
    console.print(f"parent     {'v' + str(version.parent) if version.parent else '-'}")
    if version.message:
        console.print(f"message    {escape(version.message)}")
    if version.deprecated_at is not None:
        console.print(
            f"[red]deprecated {when(version.deprecated_at)}: "
            f"{escape(version.deprecation_reason or '')}[/]"
        )
    if stats.tabular:
        columns = Table("column", "type", "nullable", "nulls", "min", "max", title="schema")
        nullable = {c.name: c.nullable for c in version.columns or []}
        for column in stats.columns:
            columns.add_row(
                escape(column.name),
                escape(column.type),
                "yes" if nullable.get(column.name, True) else "no",
                f"{column.null_count:,}",
                escape(str(column.min)) if column.min is not None else "-",
                escape(str(column.max)) if column.max is not None else "-",
            )
        console.print(columns)
    listing = Table("path", "size", "blake3", title="files")
    for f in files:
        listing.add_row(escape(f.path), size(f.size), f.blake3[:16])
    console.print(listing)


def print_diff(console: Console, diff: DiffPublic) -> None:
    """What changed between two versions."""
    console.print(f"[bold]{escape(diff.old)}[/] -> [bold]{escape(diff.new)}[/]")
    for mark, style, paths in (
        ("+", "green", diff.added),
        ("-", "red", diff.removed),
        ("~", "yellow", diff.changed),
    ):
        for path in paths:
            console.print(f"  [{style}]{mark} {escape(path)}[/]")
    console.print(f"  {diff.unchanged} file(s) unchanged")
    for change in diff.schema_changes:
        ok = change.backward_compatible and change.forward_compatible
        console.print(f"  [{'dim' if ok else 'yellow'}]schema: {escape(change.message)}[/]")
    if diff.rows_added is not None and diff.rows_removed is not None:
        console.print(
            f"  rows: [green]+{diff.rows_added:,}[/] [red]-{diff.rows_removed:,}[/] "
            "(an edited row counts once each way)"
        )


def print_impact(console: Console, impact: ImpactPublic) -> None:
    """What a version affects downstream."""
    if not (impact.dataset_versions or impact.runs or impact.model_versions):
        console.print(f"Nothing downstream of {escape(impact.source)}.")
        return
    console.print(f"Downstream of [bold]{escape(impact.source)}[/]:")
    for title, nodes in (
        ("dataset versions", impact.dataset_versions),
        ("experiment runs", impact.runs),
        ("model versions", impact.model_versions),
    ):
        if nodes:
            console.print(f"  {title}: {escape(', '.join(nodes))}")
    if impact.transformations:
        names = ", ".join(f"{t.name} ({t.type})" for t in impact.transformations)
        console.print(f"  transformations to re-run: {escape(names)}")


def lineage_tree(lineage: LineagePublic) -> Tree:
    """The lineage as a tree from the version: parents (``up``) or children (``down``).

    A node reached along two paths appears under each, its subtree only the first time.
    """
    down = lineage.direction == "down"
    children: dict[str, list[str]] = {}
    for edge in lineage.edges:
        parent, child = (edge.source, edge.target) if down else (edge.target, edge.source)
        children.setdefault(parent, [])
        if child not in children[parent]:
            children[parent].append(child)
    arrow = "feeds" if down else "comes from"
    root = Tree(f"[bold]{escape(lineage.node)}[/] [dim]({arrow})[/]")
    expanded: set[str] = {lineage.node}
    stack = [(root, lineage.node)]
    while stack:
        branch, node = stack.pop()
        for child in sorted(children.get(node, []), reverse=True):
            if child in expanded:
                branch.add(f"{escape(child)} [dim](see above)[/]")
                continue
            expanded.add(child)
            stack.append((branch.add(escape(child)), child))
    return root
