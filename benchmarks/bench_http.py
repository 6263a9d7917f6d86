"""HTTP assignment latency under load: ``GET .../assignment`` from a second process.

Run from the repository root:

    .venv/bin/python benchmarks/bench_http.py

``synapsenet serve`` runs as a subprocess (one uvicorn process, SQLite in a temporary data
directory) with a running 50/50 experiment; this process is the load generator: an asyncio
``httpx.AsyncClient`` on loopback keeping 1, 8 or 32 requests in flight for a fixed time
(and a bounded number of requests), each for a random one of 100,000 unit ids with the
operator key. Latency is measured per request in the client, so it includes the client's own
scheduling; the CPU columns show whether the server or the load generator was the limit
(both share the machine's 2 cores).

For context only (no network, no authentication, no JSON): the in-process cost of one
assignment through ``ABTestingEngine.assign`` (what the endpoint calls) and of GrowthBook's
``run()``, the reference SDK's way to assign a user.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import (
    experiment_body,
    median_rate,
    percentile,
    print_machine,
    print_table,
    running_server,
    start_experiment,
)
from growthbook import Experiment, GrowthBook

from synapsenet.core.auth import ApiKeyStore, Role
from synapsenet.core.db import Database
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.schemas import ExperimentCreate

UNITS = 100_000
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


Send = Callable[[httpx.AsyncClient, random.Random], Awaitable[httpx.Response]]
"""One request of a load test: the shared client and the row's random source."""


def get_unit(url: str) -> Send:
    """GET ``url`` for a random one of ``UNITS`` unit ids."""

    def send(client: httpx.AsyncClient, rng: random.Random) -> Awaitable[httpx.Response]:
        return client.get(url, params={"unit_id": f"user-{rng.randrange(UNITS)}"})

    return send


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One load level's measurements."""

    endpoint: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float

    @property
    def throughput(self) -> float:
        return (self.requests - self.errors) / self.seconds


async def load(
    endpoint: str,
    send: Send,
    headers: dict[str, str],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    server_pid: int,
) -> LoadResult:
    """Keep ``concurrency`` requests in flight for ``duration`` seconds (or ``max_requests``).

    ``send`` issues one request on the shared client; its random source is seeded by the
    concurrency, so every run of a row sends the same requests.
    """
    rng = random.Random(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30.0) as client:

        async def one() -> None:
            nonlocal errors
            start = time.perf_counter()
            try:
                ok = (await send(client, rng)).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

        await asyncio.gather(*(one() for _ in range(4 * concurrency)))  # warm the connections
        latencies.clear()
        errors = 0
        issued = 0
        stop = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal issued
            while time.perf_counter() < stop and issued < max_requests:
                issued += 1
                await one()

        server_before, client_before = cpu_seconds(server_pid), time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        server_cpu = (cpu_seconds(server_pid) - server_before) / elapsed
        client_cpu = (time.process_time() - client_before) / elapsed
    return LoadResult(
        endpoint, concurrency, len(latencies), errors, elapsed, latencies, server_cpu, client_cpu
    )


def in_process_rates(repeats: int) -> list[tuple[str, float]]:
    """Assignments per second without HTTP: our engine's path and GrowthBook's run()."""
    ids = [f"user-{i}" for i in range(50_000)]
    with tempfile.TemporaryDirectory(prefix="synapsenet-bench-") as directory:
        db = Database(f"sqlite:///{Path(directory) / 'bench.db'}")
        db.upgrade()
        engine = ABTestingEngine(db, route_ttl=3600.0)
        spec = ExperimentCreate.model_validate(experiment_body("in-process")).to_spec()
        experiment = engine.start(engine.create(spec).id)

        def ours() -> None:
            for unit in ids:
                engine.assign(experiment.id, unit)

        keys = ApiKeyStore(db)
        token = keys.create(Role.OPERATOR, name="bench").token

        def authenticate() -> None:
            for _ in range(1_000):
                keys.authenticate(token)

        engine_rate = median_rate(ours, len(ids), repeats)
        auth_rate = median_rate(authenticate, 1_000, repeats)
        db.dispose()
    gb_experiment = Experiment(key="bench", variations=[0, 1], weights=[0.5, 0.5])
    reused = GrowthBook(attributes={})

    def growthbook() -> None:
        for unit in ids:
            reused.set_attributes({"id": unit})
            reused.run(gb_experiment)

    return [
        ("SynapseNet ABTestingEngine.assign", engine_rate),
        ("SynapseNet API key check (ApiKeyStore.authenticate, SQLite)", auth_rate),
        ("GrowthBook run(), set_attributes per user", median_rate(growthbook, len(ids), repeats)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per row")
    parser.add_argument("--max-requests", type=int, default=50_000, help="cap per row")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print_machine(["fastapi", "uvicorn", "httpx", "growthbook"])
    results = []
    with running_server() as server, httpx.Client() as client:
        experiment_id = start_experiment(client, server, experiment_body("latency"))
        endpoints = (
            (
                "assignment",
                f"{server.base_url}/v1/abtesting/experiments/{experiment_id}/assignment",
            ),
            ("/healthz (floor)", f"{server.base_url}/healthz"),
        )
        for concurrency in args.concurrency:
            for name, url in endpoints:
                results.append(
                    asyncio.run(
                        load(
                            name,
                            get_unit(url),
                            server.headers,
                            concurrency=concurrency,
                            duration=args.duration,
                            max_requests=args.max_requests,
                            server_pid=server.pid,
                        )
                    )
                )
    print(
        f"\nGET /v1/abtesting/experiments/{{id}}/assignment?unit_id=... and, as the floor of the "
        f"same server (same middleware, no key, no database), GET /healthz; one server process "
        f"(SQLite), {args.duration:g} s per row, asyncio httpx client on loopback:"
    )
    print_table(
        [
            "endpoint",
            "in flight",
            "requests",
            "errors",
            "requests/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "server CPU",
            "client CPU",
        ],
        [
            [
                r.endpoint,
                r.concurrency,
                f"{r.requests:,}",
                r.errors,
                f"{r.throughput:,.0f}",
                *(f"{percentile(r.latencies, q) * 1000:.2f}" for q in (50, 90, 99, 100)),
                f"{r.server_cpu:.0%}",
                f"{r.client_cpu:.0%}",
            ]
            for r in results
        ],
    )
    print("\nContext, in-process (no HTTP):")
    print_table(
        ["path", "assignments/s", "us per call"],
        [
            [name, f"{rate:,.0f}", f"{1e6 / rate:.1f}"]
            for name, rate in in_process_rates(args.repeats)
        ],
    )


if __name__ == "__main__":
    main()
