"""Helpers shared by the benchmarks: timing, the machine line, tables, and live servers.

The scripts import this module as ``_common`` (run from the repository root, Python puts
``benchmarks/`` first on the import path). Servers and databases made here are throwaway:
a ``synapsenet serve`` subprocess on a free loopback port with a temporary data directory,
and a PostgreSQL database created and dropped around one run.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_ADMIN_URL = os.environ.get(
    "SYNAPSENET_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
"""A PostgreSQL database the benchmarks may create throwaway databases from."""

SYNAPSENET = Path(sys.executable).with_name("synapsenet")
"""The ``synapsenet`` command of the running virtualenv."""


# ---------------------------------------------------------------------- timing


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of ``run()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_rate(run: Callable[[], object], count: int, repeats: int) -> float:
    """Median items per second of ``run``, which handles ``count`` items per call."""
    return count / median_seconds(run, repeats)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------------- reporting


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_machine(packages: Sequence[str]) -> None:
    """Print the machine and the versions of ``packages``, so a run can be reproduced."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
        f"load average {load}"
    )
    print(", ".join(f"{p} {importlib.metadata.version(p)}" for p in packages))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print an aligned text table; the first column is left-aligned, the others right."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        first, *rest = row
        padded = (c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))
        print("  ".join([first.ljust(widths[0]), *padded]).rstrip())


# ---------------------------------------------------------------------- databases


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped on exit; yields its URL."""
    name = f"synapsenet_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------------- a live server


def free_port() -> int:
    """A TCP port nobody listens on right now (on the loopback interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Server:
    """A running ``synapsenet serve`` and an operator key for it."""

    base_url: str
    token: str
    pid: int

    @property
    def headers(self) -> dict[str, str]:
        """Request headers that authenticate as the operator."""
        return {"X-API-Key": self.token}


def _create_operator_key(env: dict[str, str]) -> str:
    created = subprocess.run(
        [str(SYNAPSENET), "keys", "create", "--role", "operator", "--name", "bench"],
        env={**env, "COLUMNS": "200"},  # a wide panel, so the token is never wrapped
        capture_output=True,
        text=True,
        check=True,
    )
    # The token (snk_<id>_<secret>) is printed inside a rich panel.
    match = re.search(r"snk_[0-9a-f]+_[A-Za-z0-9_\-]+", created.stdout)
    if match is None:
        raise RuntimeError(f"no token in `synapsenet keys create` output:\n{created.stdout}")
    return match.group(0)


@contextmanager
def running_server(database_url: str | None = None) -> Iterator[Server]:
    """Start ``synapsenet serve`` on a free loopback port with a temporary data directory.

    Args:
        database_url: The server's database; SQLite in the data directory when None.

    Yields:
        The server; it is stopped (SIGINT, then SIGKILL after 10 s) on exit.
    """
    with tempfile.TemporaryDirectory(prefix="synapsenet-bench-") as data_dir:
        port = free_port()
        env = {**os.environ, "SYNAPSENET_DATA_DIR": data_dir, "SYNAPSENET_PORT": str(port)}
        # A long tick keeps the background scheduler out of the measurements.
        env["SYNAPSENET_EXPERIMENT_TICK_SECONDS"] = "3600"
        if database_url is not None:
            env["SYNAPSENET_DATABASE_URL"] = database_url
        token = _create_operator_key(env)
        log = Path(data_dir) / "server.log"
        with open(log, "w", encoding="utf-8") as output:
            process = subprocess.Popen(
                [str(SYNAPSENET), "serve", "--host", "127.0.0.1", "--log-level", "warning"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(base_url, process, log)
            yield Server(base_url, token, process.pid)
        except BaseException:
            print(f"server log:\n{log.read_text(encoding='utf-8')[-4000:]}", file=sys.stderr)
            raise
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{log.read_text(encoding='utf-8')}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not come up:\n{log.read_text(encoding='utf-8')}")


def experiment_body(name: str, *, canary_weight: str = "0.5") -> dict[str, Any]:
    """A control/canary experiment in the API's JSON form, like the tests' ``canary_spec``.

    A conversion metric, an error-rate guardrail and a latency metric.
    """
    control_weight = str(1 - float(canary_weight))
    return {
        "name": name,
        "model_name": "fraud",
        "variants": [
            {
                "name": "control",
                "model_version": "v1",
                "weight": control_weight,
                "is_control": True,
            },
            {"name": "canary", "model_version": "v2", "weight": canary_weight},
        ],
        "metrics": [
            {"name": "conversion", "kind": "binary"},
            {
                "name": "error",
                "kind": "binary",
                "direction": "lower",
                "guardrail": True,
                "allowed_degradation": 0.1,
                "min_samples": 200,
            },
            {"name": "latency_ms", "kind": "continuous", "direction": "lower"},
        ],
    }


def start_experiment(client: httpx.Client, server: Server, body: dict[str, Any]) -> str:
    """Create and start an experiment over HTTP; return its id."""
    created = client.post(
        f"{server.base_url}/v1/abtesting/experiments", json=body, headers=server.headers
    )
    created.raise_for_status()
    experiment_id: str = created.json()["id"]
    started = client.post(
        f"{server.base_url}/v1/abtesting/experiments/{experiment_id}/start",
        headers=server.headers,
    )
    started.raise_for_status()
    return experiment_id
