"""Ingestion throughput: observations folded into sufficient statistics, in-process and over HTTP.

Run from the repository root (PostgreSQL must be up on 127.0.0.1:5432, as for the tests):

    .venv/bin/python benchmarks/bench_ingestion.py

In-process: ``ABTestingEngine.ingest`` with batches of 10,000 observations on SQLite (a file
in a temporary directory) and on a throwaway PostgreSQL database, with one batch id per
batch (one idempotency key) and with an id per event (10,000 keys). Each batch is a quarter
exposures and three quarters outcomes: conversion (binary), error (binary guardrail) and
latency (continuous, with a pre-period covariate). A retried per-event batch (all
duplicates) is timed too.

Over HTTP: ``synapsenet serve`` runs as a subprocess (SQLite in a temporary data directory,
then PostgreSQL), and this process POSTs batches of 1,000 observations to
``/v1/abtesting/experiments/{id}/events`` with an operator key, one request at a time and
four at a time. Request bodies are encoded before the clock starts. The endpoint also runs
the experiment's guardrail check after every batch that added data, as in production.

There is no reference tool for this: GrowthBook reads metrics from the user's warehouse.
Rates are printed against the issue's target of 200k events/s (in-process, batched).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from _common import (
    experiment_body,
    print_machine,
    print_table,
    running_server,
    start_experiment,
    throwaway_postgres,
)

from synapsenet.core.db import Database
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.models import Observation
from synapsenet.services.abtesting.schemas import ExperimentCreate

TARGET_IN_PROCESS = 200_000.0
VARIANTS = ("control", "canary")


def observation_rows(batch: int, size: int, rng: np.random.Generator) -> list[dict[str, object]]:
    """One batch as JSON-ready rows: per unit an exposure and three outcomes."""
    units = size // 4
    arms = rng.integers(0, 2, units)
    conversion = rng.random(units) < 0.1
    error = rng.random(units) < 0.02
    latency = rng.gamma(4.0, 25.0, units)
    pre = (latency * rng.uniform(0.8, 1.2, units)).tolist()
    when = datetime.now(UTC).isoformat()
    rows: list[dict[str, object]] = []
    for u in range(units):
        prefix = f"b{batch}-{u}"
        base = {"unit_id": f"u{batch}-{u}", "variant": VARIANTS[arms[u]], "time": when}
        outcomes = (
            ("c", {"metric": "conversion", "value": float(conversion[u])}),
            ("e", {"metric": "error", "value": float(error[u])}),
            ("l", {"metric": "latency_ms", "value": float(latency[u]), "covariate": pre[u]}),
        )
        rows.append({"event_id": f"{prefix}-x", **base})
        rows.extend({"event_id": f"{prefix}-{tag}", **base, **extra} for tag, extra in outcomes)
    return rows


def to_observations(rows: list[dict[str, object]]) -> list[Observation]:
    now = datetime.now(UTC)
    return [
        Observation(
            event_id=str(r["event_id"]),
            unit_id=str(r["unit_id"]),
            variant=str(r["variant"]),
            time=now,
            metric=r.get("metric"),  # type: ignore[arg-type]
            value=r.get("value"),  # type: ignore[arg-type]
            covariate=r.get("covariate"),  # type: ignore[arg-type]
        )
        for r in rows
    ]


# ---------------------------------------------------------------------- in-process


@contextmanager
def database(backend: str) -> Iterator[Database]:
    """A migrated, empty database of the given backend, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="synapsenet-bench-") as directory:
            db = Database(f"sqlite:///{Path(directory) / 'bench.db'}")
            db.upgrade()
            try:
                yield db
            finally:
                db.dispose()
    else:
        with throwaway_postgres() as url:
            db = Database(url)
            db.upgrade()
            try:
                yield db
            finally:
                db.dispose()


def in_process(
    backend: str, batches: list[list[Observation]]
) -> list[tuple[str, str, int, float, float]]:
    """Rows (backend, mode, events, median batch seconds, events/s) for one backend."""
    results = []
    with database(backend) as db:
        engine = ABTestingEngine(db)
        spec = ExperimentCreate.model_validate(experiment_body("ingest")).to_spec()
        experiment = engine.start(engine.create(spec).id)
        half = len(batches) // 2
        modes = (
            ("batch id", batches[:half], True),
            ("per-event ids", batches[half:], False),
            ("retry, per-event ids (all duplicates)", batches[half:], False),
        )
        for mode, work, with_batch_id in modes:
            times = []
            for index, batch in enumerate(work):
                batch_id = f"{mode}-{index}" if with_batch_id else None
                start = time.perf_counter()
                result = engine.ingest(experiment.id, batch, batch_id=batch_id)
                times.append(time.perf_counter() - start)
                expected = 0 if mode.startswith("retry") else len(batch)
                assert result.accepted == expected, (mode, result)
            events = sum(len(b) for b in work)
            median = statistics.median(times)
            results.append((backend, mode, events, median, len(work[0]) / median))
        _, aggregates, exposures = engine.statistics(experiment.id)
        exposed = sum(count for count, _ in exposures.values())
        assert exposed == sum(len(b) for b in batches) // 4, exposed
        assert all(a.covariate is not None for a in aggregates if a.metric == "latency_ms")
    return results


# ---------------------------------------------------------------------- over HTTP


@dataclass(frozen=True, slots=True)
class HttpRow:
    """One HTTP measurement: accepted events per second of wall time, and failures."""

    backend: str
    mode: str
    events: int
    median_seconds: float
    rate: float
    failed: int
    first_error: str


def over_http(
    backend: str, bodies: list[list[dict[str, object]]], concurrency: tuple[int, ...]
) -> list[HttpRow]:
    """POST every body to a fresh server, ``workers`` requests in flight at a time."""
    results = []
    with (
        throwaway_postgres() if backend == "postgresql" else _no_url() as url,
        running_server(url) as server,
        httpx.Client(timeout=60.0, limits=httpx.Limits(max_connections=16)) as client,
    ):
        experiment_id = start_experiment(client, server, experiment_body("ingest-http"))
        endpoint = f"{server.base_url}/v1/abtesting/experiments/{experiment_id}/events"
        headers = {**server.headers, "Content-Type": "application/json"}

        def post(payload: bytes) -> tuple[float, int, str]:
            """Latency, accepted events (-1: failed) and the failure's first words."""
            start = time.perf_counter()
            try:
                response = client.post(endpoint, content=payload, headers=headers)
            except httpx.TransportError as exc:  # the server dropped the connection
                return time.perf_counter() - start, -1, repr(exc)
            elapsed = time.perf_counter() - start
            if response.status_code != 200:
                return elapsed, -1, f"{response.status_code} {response.text[:200]}"
            return elapsed, int(response.json()["accepted"]), ""

        for i in range(2):  # first requests pay for imports, caches and the first guardrail rows
            post(json.dumps({"observations": bodies[0], "batch_id": f"warm-up-{i}"}).encode())
        per_row = len(bodies) // (2 * len(concurrency))
        shares = iter(bodies[i : i + per_row] for i in range(0, len(bodies), per_row))
        for workers in concurrency:
            for mode in ("batch id", "per-event ids"):
                share = next(shares)
                payloads = [
                    json.dumps(
                        {"observations": rows, "batch_id": f"{mode}-{workers}-{i}"}
                        if mode == "batch id"
                        else {"observations": rows}
                    ).encode()
                    for i, rows in enumerate(share)
                ]
                start = time.perf_counter()
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    answers = list(pool.map(post, payloads))
                elapsed = time.perf_counter() - start
                failures = [error for _, accepted, error in answers if accepted < 0]
                results.append(
                    HttpRow(
                        backend=backend,
                        mode=f"{mode}, {workers} in flight",
                        events=sum(len(rows) for rows in share),
                        median_seconds=statistics.median(t for t, _, _ in answers),
                        rate=sum(max(accepted, 0) for _, accepted, _ in answers) / elapsed,
                        failed=len(failures),
                        first_error=failures[0] if failures else "",
                    )
                )
    return results


@contextmanager
def _no_url() -> Iterator[None]:
    yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="in-process batches per backend")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--http-batches", type=int, default=160, help="HTTP requests per backend")
    parser.add_argument("--http-batch-size", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    print_machine(["SQLAlchemy", "psycopg", "fastapi", "uvicorn", "httpx"])
    batches = [
        to_observations(observation_rows(b, args.batch_size, rng)) for b in range(args.batches)
    ]
    print(
        f"\nIn-process engine.ingest, batches of {args.batch_size:,} observations "
        f"({args.batches // 2} batches per mode), median per batch:"
    )
    rows = []
    for backend in ("sqlite", "postgresql"):
        for name, mode, events, median, rate in in_process(backend, batches):
            verdict = (
                ""
                if mode.startswith("retry")
                else ("met" if rate >= TARGET_IN_PROCESS else "NOT met")
            )
            rows.append(
                [
                    name,
                    mode,
                    f"{events:,}",
                    f"{median * 1000:.1f}",
                    f"{rate:,.0f}",
                    f"{rate / TARGET_IN_PROCESS:.2f}x {verdict}".rstrip(),
                ]
            )
    print_table(["backend", "mode", "events", "ms/batch", "events/s", "x 200k target"], rows)

    bodies = [
        observation_rows(10_000 + b, args.http_batch_size, rng) for b in range(args.http_batches)
    ]
    concurrency = (1, 4)
    print(
        f"\nOver HTTP, POST .../events with batches of {args.http_batch_size:,} observations "
        f"({args.http_batches // (2 * len(concurrency))} requests per row), guardrail check "
        "after each batch:"
    )
    rows = []
    errors = []
    for backend in ("sqlite", "postgresql"):
        for row in over_http(backend, bodies, concurrency):
            rows.append(
                [
                    row.backend,
                    row.mode,
                    f"{row.events:,}",
                    f"{row.median_seconds * 1000:.1f}",
                    f"{row.rate:,.0f}",
                    f"{row.failed}",
                ]
            )
            if row.failed:
                errors.append(f"{row.backend}, {row.mode}: {row.first_error}")
    print_table(
        ["server database", "mode", "events", "ms/request (median)", "events/s", "failed"], rows
    )
    for error in errors:
        print(f"first failure of {error}")


if __name__ == "__main__":
    main()
