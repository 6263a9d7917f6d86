from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from synapsenet import __version__
from synapsenet.cli.main import app
from tests.fixtures.live_server import free_port

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SYNAPSENET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"synapsenet {__version__}"


def test_db_upgrade_then_current(tmp_path: Path) -> None:
    first = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert "upgraded from empty to" in first.stdout
    assert (tmp_path / ".synapsenet" / "synapsenet.db").exists()
    second = runner.invoke(app, ["db", "upgrade"])
    assert "already at revision" in second.stdout
    current = runner.invoke(app, ["db", "current"])
    assert "up to date" in current.stdout


def test_keys_create_list_revoke() -> None:
    created = runner.invoke(app, ["keys", "create", "--role", "operator", "--name", "ci"])
    assert created.exit_code == 0, created.output
    assert "shown once" in created.stdout
    token = next(w for w in created.stdout.split() if w.startswith("snk_"))
    # The secret is URL-safe base64 and may itself contain "_": split only twice.
    _, key_id, secret = token.split("_", 2)
    listed = runner.invoke(app, ["keys", "list"])
    assert key_id in listed.stdout
    assert "operator" in listed.stdout
    assert secret not in listed.stdout
    revoked = runner.invoke(app, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0
    assert f"Revoked operator key {key_id}" in revoked.stdout
    assert key_id not in runner.invoke(app, ["keys", "list"]).stdout
    assert key_id in runner.invoke(app, ["keys", "list", "--all"]).stdout


def test_revoking_an_unknown_key_is_one_line_exit_1() -> None:
    result = runner.invoke(app, ["keys", "revoke", "missing"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no API key with id 'missing'"


def test_unknown_role_is_refused_by_the_parser() -> None:
    result = runner.invoke(app, ["keys", "create", "--role", "root"])
    assert result.exit_code == 2
    assert "root" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SYNAPSENET_EVENT_BUS", "kafka://broker", "error: SYNAPSENET_EVENT_BUS: must be"),
        (
            "SYNAPSENET_DATABASE_URL",
            "postgresql://nobody@127.0.0.1:1/none",
            "error: SYNAPSENET_DATABASE_URL: cannot connect",
        ),
    ],
)
def test_bad_configuration_fails_with_one_line(variable: str, value: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSENET_")}
    env[variable] = value
    result = subprocess.run(
        [sys.executable, "-m", "synapsenet.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected)
    assert "Traceback" not in result.stderr


def test_unreachable_redis_bus_names_the_setting() -> None:
    result = runner.invoke(app, ["serve"], env={"SYNAPSENET_EVENT_BUS": "redis://127.0.0.1:1/0"})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: SYNAPSENET_EVENT_BUS: ")


def test_serve_answers_healthz_on_embedded_defaults(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSENET_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "synapsenet.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # A liveness bound, not a speed target: generous, since the machine may be busy.
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != 200 and server.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 200, "the server did not answer /healthz within 60 s"
        key = (tmp_path / ".synapsenet" / "admin.key").read_text().strip()
        keys = httpx.get(f"http://127.0.0.1:{port}/v1/keys", headers={"X-API-Key": key})
        assert keys.status_code == 200
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert "admin.key" in output
    # uvicorn shuts down cleanly on SIGTERM, then re-raises the signal as its exit status.
    assert "Application shutdown complete" in output
    assert server.returncode in (0, -15), output
