"""The demo story end to end through the HTTP API.

Two variants run ``synapsenet serve`` as a real server process and ``synapsenet demo``
against it: one on embedded defaults (SQLite, in-process bus, local objects), one on the
real PostgreSQL and Redis (Redis Streams bus, Redis explanation cache). A third runs the
``promote`` scenario in-process (the gateway served by uvicorn in a thread, the command
through Typer's runner), so the demo's own code is measured by coverage.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from synapsenet.cli.main import app
from synapsenet.sdk import Client
from tests.fixtures.live_server import Server
from tests.fixtures.redis import wait_until
from tests.fixtures.s3 import free_port

DEMO_TIMEOUT = 900

runner = CliRunner()


@pytest.fixture
def e2e_database(postgres_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one server process, dropped afterwards."""
    name = f"synapsenet_e2e_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def base_environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSENET_")}
    env.update({"SYNAPSENET_DATA_DIR": str(data_dir), "COLUMNS": "160"})
    return env


@pytest.fixture
def served(tmp_path: Path) -> dict[str, str]:
    """Settings for a server process; the test adds backends, then calls ``start``."""
    return base_environment(tmp_path / ".synapsenet")


def start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "synapsenet.cli", "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout=120, message="the server to answer /healthz")
    return process, url


def run_demo(env: dict[str, str], url: str, *extra: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "synapsenet.cli", "demo", "--url", url, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def check_rollback_story(url: str, data_dir: Path) -> None:
    """What the server holds after the rollback story, read through the SDK."""
    token = (data_dir / "admin.key").read_text().strip()
    with Client(url, token) as client:
        assert client.models.production_version("demo-credit").version == "1"
        assert client.models.get_version("demo-credit", "2").stage.value == "archived"
        (experiment,) = client.experiments.list_experiments(model_name="demo-credit")
        assert experiment.status.value == "rolled_back"
        results = client.experiments.results(experiment.id)
        error = next(m for m in results.metrics if m.metric == "error")
        assert error.treatment_mean is not None
        assert error.control_mean is not None
        assert error.treatment_mean > error.control_mean
        deprecated = client.datasets.get_version("demo-loan-features", "v2")
        assert deprecated.deprecated_at is not None
        runs = client.runs.list_runs()
        assert sorted(r.name for r in runs) == ["baseline", "candidate"]
        for run in runs:
            assert len(client.runs.datasets_of_run(run.id)) == 1


@pytest.mark.parametrize("backends", ["embedded", "postgresql+redis"])
def test_the_rollback_story_end_to_end(
    backends: str, request: pytest.FixtureRequest, tmp_path: Path, served: dict[str, str]
) -> None:
    stream = f"synapsenet-e2e:{uuid.uuid4().hex}"
    if backends != "embedded":
        redis_url: str = request.getfixturevalue("redis_url")
        served.update(
            {
                "SYNAPSENET_DATABASE_URL": request.getfixturevalue("e2e_database"),
                "SYNAPSENET_EVENT_BUS": redis_url,
                "SYNAPSENET_EVENT_STREAM": stream,
                "SYNAPSENET_CACHE_URL": redis_url,
            }
        )
    process, url = start_server(served, tmp_path / "server.log")
    try:
        output = run_demo(served, url)
        for step in range(1, 10):
            assert f"{step}/9" in output
        assert "rolled back automatically" in output
        assert "Every step succeeded" in output
        check_rollback_story(url, Path(served["SYNAPSENET_DATA_DIR"]))
        # Running it again reuses the data versions and tells the story with new models.
        again = run_demo(served, url)
        assert "is there from an earlier run (same bytes)" in again
        assert "Every step succeeded" in again
    finally:
        process.terminate()
        process.wait(timeout=30)
        if backends != "embedded":
            client = redis.Redis.from_url(served["SYNAPSENET_EVENT_BUS"])
            client.delete(stream, f"{stream}:dead")
            client.close()


def test_the_promote_story_in_process(live_server: Server, clean_environment: None) -> None:
    result = runner.invoke(
        app, ["demo", "--scenario", "promote", "--prefix", "promo"], env=live_server.env
    )
    assert result.exit_code == 0, result.stdout
    assert "the canary won" in result.stdout
    assert "Every step succeeded" in result.stdout
    token = live_server.platform.settings.admin_key_path.read_text().strip()
    with Client(live_server.url, token) as client:
        assert client.models.production_version("promo-credit").version == "2"
        (experiment,) = client.experiments.list_experiments(model_name="promo-credit")
        assert (experiment.status.value, experiment.winner) == ("completed", "canary")
        impact = client.datasets.impact("promo-loans-raw", "v1")
        assert "dataset:promo-loan-features@v1" in impact.dataset_versions
        assert client.datasets.get_version("promo-loans-raw", "v1").deprecated_at is not None


def test_the_demo_fails_loudly_when_a_step_does_not_hold(
    live_server: Server, clean_environment: None
) -> None:
    # 200 requests are too few for the guardrail to decide: the rollback step cannot hold.
    result = runner.invoke(app, ["demo", "--requests", "200"], env=live_server.env)
    assert result.exit_code == 1
    assert "the canary was expected to be rolled back; it is running" in result.stdout
    assert "Every step succeeded" not in result.stdout
    refused = runner.invoke(app, ["demo", "--scenario", "sideways"], env=live_server.env)
    assert refused.exit_code == 2
    assert "must be 'rollback' or 'promote'" in refused.stdout + refused.stderr
