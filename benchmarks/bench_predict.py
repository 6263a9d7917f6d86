"""Prediction throughput and latency: ``POST /v1/models/{name}/predict`` from a second process.

Run from the repository root:

    .venv/bin/python benchmarks/bench_predict.py

``synapsenet serve`` runs as a subprocess (one uvicorn process, SQLite in a temporary data
directory) with a gradient-boosting classifier registered twice (versions 1 and 2, version 1
in production). This process is the load generator: an asyncio ``httpx.AsyncClient`` on
loopback keeping 1, 8 or 32 requests in flight for a fixed time, each request one applicant
(six features) for a random one of 100,000 unit ids, with an operator key.

Three rows per load level:

* **production**: no experiment runs; the production version serves.
* **experiment**: a 50/50 experiment on the model runs; each request is routed by the A/B
  engine (sticky hash of the unit), served by its arm's version, and recorded as an
  exposure (buffered, written in batches). The difference to *production* is the routing
  overhead.
* **hand-written FastAPI** (the reference): the same model (loaded from the same skops
  file) behind a minimal FastAPI + uvicorn endpoint with the same JSON body and no
  platform: no authentication, registry, routing, metrics or request ids. It is what a team
  writes when it has no platform, and bounds what the platform's features cost.

A last table times ``InferenceEngine.route`` and ``predict`` in-process (no HTTP, no
server), where the routing cost is not drowned by the network stack's noise.

Latency is measured per request in the client, so it includes the client's scheduling; the
CPU columns show whether the server or the load generator was the limit (both share the
machine's 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable
from pathlib import Path

import httpx
import numpy as np
from _common import (
    free_port,
    median_seconds,
    percentile,
    print_machine,
    print_table,
    running_server,
)
from bench_http import UNITS, LoadResult, Send, load
from sklearn.ensemble import GradientBoostingClassifier

from synapsenet.sdk import Client
from synapsenet.services.registry.flavors import ModelFlavor, serialize

UNCAPPED = 10**9
"""No request cap: each row runs for its duration."""

FEATURES = ("log_income", "debt_ratio", "age", "tenure_months", "utilization", "credit_load")


def post_row(url: str, rows: list[list[float]]) -> Send:
    """POST one random row of ``rows`` for a random one of ``UNITS`` unit ids."""

    def send(client: httpx.AsyncClient, rng: random.Random) -> Awaitable[httpx.Response]:
        body = {"unit_id": f"user-{rng.randrange(UNITS)}", "instances": [rng.choice(rows)]}
        return client.post(url, json=body)

    return send


def training_data(n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, len(FEATURES)))
    y = (x[:, 1] + x[:, 4] - 0.5 * x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return x, y


REFERENCE_APP = textwrap.dedent(
    '''
    """A hand-written prediction endpoint: FastAPI, the model, nothing else."""
    import os

    import numpy as np
    from fastapi import FastAPI
    from pydantic import BaseModel
    from skops.io import get_untrusted_types, load

    path = os.environ["MODEL_PATH"]
    model = load(path, trusted=get_untrusted_types(file=path))
    app = FastAPI()


    class Body(BaseModel):
        unit_id: str | None = None
        instances: list[list[float]]


    @app.post("/predict")
    def predict(body: Body) -> dict:
        proba = model.predict_proba(np.asarray(body.instances, dtype=np.float64))
        labels = model.classes_[proba.argmax(axis=1)]
        return {"predictions": [str(v) for v in labels], "outputs": proba.tolist()}
    '''
)


def reference_server(model_bytes: bytes, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start the hand-written endpoint with uvicorn; return the process and its URL."""
    (directory / "reference_app.py").write_text(REFERENCE_APP)
    model_path = directory / "model.skops"
    model_path.write_bytes(model_bytes)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "reference_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=directory,
        env={"MODEL_PATH": str(model_path), "PATH": "/usr/bin:/bin"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{url}/predict", json={"instances": [[0.0] * len(FEATURES)]}, timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the reference server did not come up")


def in_process(model: GradientBoostingClassifier, rows: list[list[float]]) -> list[list[str]]:
    """Microseconds per ``InferenceEngine.predict`` call without HTTP: the routing cost alone."""
    from synapsenet.core.db import Database
    from synapsenet.core.storage import LocalObjectStore
    from synapsenet.services.abtesting.engine import ABTestingEngine
    from synapsenet.services.abtesting.exposures import ExposureLog
    from synapsenet.services.abtesting.schemas import ExperimentCreate
    from synapsenet.services.inference.engine import InferenceEngine
    from synapsenet.services.inference.registry_models import RegistryServedModels
    from synapsenet.services.registry.loader import RegistryModelLoader
    from synapsenet.services.registry.registry import ModelRegistry

    with tempfile.TemporaryDirectory(prefix="synapsenet-bench-") as directory:
        db = Database(f"sqlite:///{Path(directory) / 'bench.db'}")
        db.upgrade()
        registry = ModelRegistry(db, LocalObjectStore(Path(directory) / "objects"))
        for _ in range(2):
            registry.log_model("credit", model, feature_names=FEATURES)
        registry.promote("credit", "1", reason="benchmark")
        ab = ABTestingEngine(db, route_ttl=3600.0)
        exposures = ExposureLog(ab)
        served = RegistryServedModels(registry, RegistryModelLoader(registry), ttl=3600.0)
        engine = InferenceEngine(served, router=ab, exposures=exposures, experiment_ttl=3600.0)
        calls = 3000

        def serve() -> None:
            for i in range(calls):
                engine.predict("credit", [rows[i % len(rows)]], unit_id=f"user-{i}")

        def route() -> None:
            for i in range(calls):
                engine.route("credit", unit_id=f"user-{i}", version=None)

        measured = []
        for label in ("production", "experiment"):
            if label == "experiment":
                body = {
                    "name": "routing",
                    "model_name": "credit",
                    "variants": [
                        {"name": "a", "model_version": "1", "weight": "0.5", "is_control": True},
                        {"name": "b", "model_version": "2", "weight": "0.5"},
                    ],
                }
                ab.start(ab.create(ExperimentCreate.model_validate(body).to_spec()).id)
            serve()  # warm up: load and adapt both versions
            predict_us = median_seconds(serve, 3) / calls * 1e6
            route_us = median_seconds(route, 3) / calls * 1e6
            measured.append([label, f"{route_us:.1f}", f"{predict_us:.1f}"])
            exposures.flush()
        db.dispose()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per row")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds")
    args = parser.parse_args()

    print_machine(["fastapi", "uvicorn", "httpx", "scikit-learn", "skops"])
    x, y = training_data()
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(x, y)
    rows = x[:2000].tolist()
    results: list[LoadResult] = []
    with running_server() as server, tempfile.TemporaryDirectory() as scratch:
        with Client(server.base_url, server.token) as client:
            for _ in range(2):
                client.log_model("credit", model, feature_names=FEATURES, background=x[:50])
            client.models.promote("credit", "1", reason="benchmark")
        url = f"{server.base_url}/v1/models/credit/predict"
        reference, reference_url = reference_server(
            serialize(model, ModelFlavor.SKLEARN), Path(scratch)
        )
        spec = {
            "name": "routing",
            "model_name": "credit",
            "variants": [
                {"name": "control", "model_version": "1", "weight": "0.5", "is_control": True},
                {"name": "canary", "model_version": "2", "weight": "0.5"},
            ],
            "metrics": [{"name": "error", "kind": "binary", "direction": "lower"}],
        }
        try:
            with Client(server.base_url, server.token) as client:
                experiment = client.experiments.create_experiment(spec)
                client.experiments.start(experiment.id)
                # Rows interleave, in every repeat: the experiment is paused (production
                # serves) or running (routing), then the reference.
                for _ in range(args.repeats):
                    for concurrency in args.concurrency:
                        for target in ("production", "experiment", "hand-written FastAPI"):
                            if target == "production":
                                client.experiments.pause(experiment.id)
                            elif target == "experiment":
                                client.experiments.resume(experiment.id)
                            reference_row = target == "hand-written FastAPI"
                            results.append(
                                asyncio.run(
                                    load(
                                        target,
                                        post_row(
                                            f"{reference_url}/predict" if reference_row else url,
                                            rows,
                                        ),
                                        {} if reference_row else server.headers,
                                        concurrency=concurrency,
                                        duration=args.duration,
                                        max_requests=UNCAPPED,
                                        server_pid=reference.pid if reference_row else server.pid,
                                    )
                                )
                            )
                time.sleep(1.0)  # the exposure log writes every 0.2 s
                counted = client.experiments.results(experiment.id)
            exposures = sum(v.exposures for v in counted.variants)
        finally:
            reference.terminate()
            reference.wait(timeout=10)

    def merged(target: str, concurrency: int) -> LoadResult:
        """Every repeat of one row, pooled: latencies and requests over total time."""
        runs = [r for r in results if (r.endpoint, r.concurrency) == (target, concurrency)]
        return LoadResult(
            target,
            concurrency,
            sum(r.requests for r in runs),
            sum(r.errors for r in runs),
            sum(r.seconds for r in runs),
            [latency for r in runs for latency in r.latencies],
            sum(r.server_cpu * r.seconds for r in runs) / sum(r.seconds for r in runs),
            sum(r.client_cpu * r.seconds for r in runs) / sum(r.seconds for r in runs),
        )

    table = []
    for concurrency in args.concurrency:
        base = merged("production", concurrency)
        for target in ("production", "experiment", "hand-written FastAPI"):
            r = merged(target, concurrency)
            table.append(
                [
                    target,
                    concurrency,
                    f"{r.requests:,}",
                    r.errors,
                    f"{r.throughput:,.0f}",
                    f"{percentile(r.latencies, 50) * 1000:.1f}",
                    f"{percentile(r.latencies, 99) * 1000:.1f}",
                    f"{r.throughput / base.throughput:.2f}",
                    f"{r.server_cpu:.2f}",
                    f"{r.client_cpu:.2f}",
                ]
            )
    print_table(
        [
            "target",
            "in flight",
            "requests",
            "errors",
            "req/s",
            "p50 ms",
            "p99 ms",
            "x production",
            "server CPU",
            "client CPU",
        ],
        table,
    )
    routed = [r for r in results if r.endpoint == "experiment"]
    served = sum(r.requests + 4 * r.concurrency for r in routed)  # measured + warm-up
    verdict = "every one counted" if exposures == served else "MISMATCH"
    print(
        f"\nexposures counted by the experiment: {exposures:,}; requests it served (measured "
        f"+ warm-up): {served:,}: {verdict}"
    )
    print("\nin process, no HTTP (one row per call, median of 3 x 3,000 calls):")
    print_table(["route", "route() us", "predict() us"], in_process(model, rows))


if __name__ == "__main__":
    main()
