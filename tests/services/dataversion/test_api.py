"""The data versioning REST API through the real gateway app, with real API keys."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from synapsenet.core.asgi_transport import InProcessTransport
from synapsenet.core.auth import Role
from synapsenet.core.outbox import OutboxRecord
from synapsenet.core.platform import Platform
from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.gateway import create_app
from synapsenet.gateway.problems import PROBLEM_MEDIA_TYPE
from synapsenet.services.dataversion.chunking import chunk_bytes
from synapsenet.services.dataversion.client import DataVersionClient
from synapsenet.services.dataversion.lineage_model import (
    NodeRef,
    Transformation,
    TransformationType,
)
from tests.services.dataversion.api_fixtures import digest, orders_csv, tar_of

BASE = "/v1/datasets"


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    return create_app(platform=platform)


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    """The app without its lifespan: no outbox relay competes for SQLite's write lock."""
    test_client = TestClient(app, raise_server_exceptions=False)
    yield test_client
    test_client.close()


@pytest.fixture
def tokens(platform: Platform) -> dict[Role, str]:
    return {role: platform.keys.create(role, name=f"test {role.value}").token for role in Role}


@pytest.fixture
def operator(http: TestClient, tokens: dict[Role, str]) -> TestClient:
    """The test client, sending an operator key."""
    http.headers["X-API-Key"] = tokens[Role.OPERATOR]
    return http


def create(http: TestClient, name: str = "orders", **body: Any) -> dict[str, Any]:
    response = http.post(BASE, json={"name": name, "format": "csv", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def upload(
    http: TestClient,
    data: bytes,
    *,
    dataset: str = "orders",
    path: str | None = "orders.csv",
    blake3: str | None = None,
    content_type: str = "application/octet-stream",
    **params: Any,
) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if blake3 is not None:
        headers["X-Content-BLAKE3"] = blake3
    if path is not None:
        params["path"] = path
    response: httpx.Response = http.post(
        f"{BASE}/{dataset}/versions", content=data, params=params, headers=headers
    )
    return response


def event_types(platform: Platform) -> list[str]:
    with platform.db.transaction() as session:
        return list(session.scalars(select(OutboxRecord.type).order_by(OutboxRecord.id)))


def test_full_flow_from_upload_to_deprecation(operator: TestClient, platform: Platform) -> None:
    created = create(operator, description="raw orders")
    assert (created["name"], created["format"], created["head"]) == ("orders", "csv", 0)
    assert created["compatibility"] == "backward"
    assert operator.get(BASE).json()[0]["name"] == "orders"

    v1_bytes = orders_csv(1_000)
    first = upload(operator, v1_bytes, blake3=digest(v1_bytes), message="first export")
    assert first.status_code == 201, first.text
    v1 = first.json()
    assert (v1["ref"], v1["number"], v1["created"], v1["rows"]) == ("orders@v1", 1, True, 1_000)
    assert v1["author"] == "test operator"
    assert [c["name"] for c in v1["columns"]] == ["id", "customer", "amount"]
    assert datetime.fromisoformat(v1["committed_at"]).tzinfo is not None

    v2_bytes = orders_csv(1_050)
    second = upload(
        operator, v2_bytes, blake3=digest(v2_bytes), tag=["golden", "latest"], author="ana"
    )
    assert second.status_code == 201, second.text
    v2 = second.json()
    assert (v2["number"], v2["parent"], v2["tags"], v2["author"]) == (
        2,
        1,
        ["golden", "latest"],
        "ana",
    )
    again = upload(operator, v2_bytes)
    assert again.status_code == 200
    assert (again.json()["number"], again.json()["created"]) == (2, False)

    log = operator.get(f"{BASE}/orders/versions").json()
    assert [v["number"] for v in log] == [2, 1]
    assert operator.get(f"{BASE}/orders/versions", params={"limit": 1}).json()[0]["number"] == 2
    for ref in ("v2", "2", "golden", "head", v2["root"]):
        assert operator.get(f"{BASE}/orders/versions/{ref}").json()["number"] == 2

    diff = operator.get(f"{BASE}/orders/diff", params={"from": "v1", "to": "v2"}).json()
    assert diff["changed"] == ["orders.csv"]
    assert (diff["rows_added"], diff["rows_removed"], diff["schema_changes"]) == (50, 0, [])
    assert operator.get(f"{BASE}/orders/diff", params={"from": "v1"}).json()["new"] == "orders@v2"

    stats = operator.get(f"{BASE}/orders/versions/v2/stats").json()
    assert (stats["tabular"], stats["rows"]) == (True, 1_050)
    amount = next(c for c in stats["columns"] if c["name"] == "amount")
    assert (amount["null_count"], amount["min"], amount["max"]) == (0, 0, 999)

    files = operator.get(f"{BASE}/orders/versions/v1/files").json()
    chunk_count = len(chunk_bytes(v1_bytes))  # with the default chunk sizes
    assert files == [
        {
            "path": "orders.csv",
            "size": len(v1_bytes),
            "blake3": digest(v1_bytes),
            "chunks": chunk_count,
        }
    ]
    download = operator.get(f"{BASE}/orders/versions/v1/files/orders.csv")
    assert download.status_code == 200
    assert download.content == v1_bytes
    assert download.headers["x-content-blake3"] == digest(v1_bytes)
    assert download.headers["content-length"] == str(len(v1_bytes))
    assert operator.get(f"{BASE}/orders/versions/v1/files/nope.csv").status_code == 404

    tagged = operator.post(f"{BASE}/orders/versions/v1/tags", json={"tag": "production"})
    assert tagged.json()["tags"] == ["production"]
    assert operator.get(f"{BASE}/orders/versions/production").json()["number"] == 1
    assert operator.delete(f"{BASE}/orders/tags/latest").status_code == 204
    assert operator.get(f"{BASE}/orders/versions/latest").status_code == 404

    between = datetime.fromisoformat(v2["committed_at"]) - timedelta(microseconds=1)
    as_of = operator.get(f"{BASE}/orders/as-of", params={"timestamp": between.isoformat()})
    assert as_of.json()["number"] == 1
    now = operator.get(f"{BASE}/orders/as-of", params={"timestamp": datetime.now(UTC).isoformat()})
    assert now.json()["number"] == 2
    before = operator.get(f"{BASE}/orders/as-of", params={"timestamp": "2000-01-01T00:00:00Z"})
    assert before.status_code == 404
    naive = operator.get(f"{BASE}/orders/as-of", params={"timestamp": "2024-05-01T12:00:00"})
    assert naive.status_code == 422
    assert naive.json()["field"] == "query.timestamp"

    for source, target in (("dataset:orders@v1", "run:r1"), ("run:r1", "model:fraud@3")):
        linked = operator.post(f"{BASE}/lineage/links", json={"source": source, "target": target})
        assert linked.status_code == 201, linked.text
    dangling = operator.post(
        f"{BASE}/lineage/links", json={"source": "dataset:orders@v9", "target": "run:r1"}
    )
    assert dangling.status_code == 404
    malformed = operator.post(f"{BASE}/lineage/links", json={"source": "orders", "target": "x"})
    assert (malformed.status_code, malformed.json()["field"]) == (422, "source")

    down = operator.get(f"{BASE}/orders/versions/v1/lineage", params={"direction": "down"}).json()
    assert [(n["node"], n["distance"]) for n in down["nodes"]] == [
        ("run:r1", 1),
        ("model:fraud@3", 2),
    ]
    assert [(e["source"], e["target"]) for e in down["edges"]] == [
        ("dataset:orders@v1", "run:r1"),
        ("run:r1", "model:fraud@3"),
    ]
    shallow = operator.get(
        f"{BASE}/orders/versions/v1/lineage", params={"direction": "down", "depth": 1}
    ).json()
    assert [n["node"] for n in shallow["nodes"]] == ["run:r1"]
    assert operator.get(f"{BASE}/orders/versions/v1/lineage").json()["nodes"] == []
    impact = operator.get(f"{BASE}/orders/versions/production/impact").json()
    assert (impact["source"], impact["runs"], impact["model_versions"]) == (
        "dataset:orders@v1",
        ["run:r1"],
        ["model:fraud@3"],
    )
    dot = operator.get(f"{BASE}/orders/versions/v1/lineage.dot")
    assert dot.headers["content-type"].startswith("text/plain")
    assert "digraph" in dot.text
    assert "run:r1" in dot.text or "r1" in dot.text
    mermaid = operator.get(f"{BASE}/orders/versions/v1/lineage.mmd")
    assert mermaid.text.startswith(("flowchart", "graph"))
    assert operator.get(f"{BASE}/lineage/openlineage").json() == []

    deprecated = operator.post(
        f"{BASE}/orders/versions/v1/deprecate", json={"reason": "duplicated rows"}
    )
    assert deprecated.status_code == 200, deprecated.text
    body = deprecated.json()
    assert body["version"]["deprecation_reason"] == "duplicated rows"
    assert body["version"]["deprecated_at"] is not None
    assert body["impact"]["runs"] == ["run:r1"]
    again_deprecated = operator.post(f"{BASE}/orders/versions/v1/deprecate", json={"reason": "x"})
    assert again_deprecated.status_code == 409

    verified = operator.post(f"{BASE}/orders/versions/v2/verify").json()
    assert (verified["ok"], verified["files"], verified["problems"]) == (True, 1, [])
    gc = operator.post(f"{BASE}/gc", json={"grace_seconds": 0, "dry_run": True}).json()
    assert (gc["dry_run"], gc["deleted"]) == (True, 0)
    assert gc["kept_referenced"] >= 1

    types = event_types(platform)
    assert types.count("dataversion.version.committed") == 2
    assert "dataversion.dataset.created" in types
    assert types[-1] == "dataversion.version.deprecated"


def test_corrupt_or_truncated_upload_is_refused_and_commits_nothing(
    operator: TestClient, platform: Platform
) -> None:
    create(operator)
    data = orders_csv(500)
    truncated = upload(operator, data[:-100], blake3=digest(data))
    assert truncated.status_code == 422
    assert truncated.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = truncated.json()
    assert problem["field"] == "X-Content-BLAKE3"
    assert (problem["expected"], problem["actual"]) == (digest(data), digest(data[:-100]))
    assert digest(data) in problem["detail"]
    assert digest(data[:-100]) in problem["detail"]
    assert problem["received_bytes"] == len(data) - 100

    flipped = bytearray(data)
    flipped[10] ^= 1
    sha = hashlib.sha256(data).hexdigest()
    corrupt = operator.post(
        f"{BASE}/orders/versions",
        content=bytes(flipped),
        params={"path": "orders.csv"},
        headers={"X-Content-SHA256": sha},
    )
    assert (corrupt.status_code, corrupt.json()["expected"]) == (422, sha)
    malformed = upload(operator, data, blake3="not-a-digest")
    assert (malformed.status_code, malformed.json()["field"]) == (422, "X-Content-BLAKE3")

    assert operator.get(f"{BASE}/orders").json()["head"] == 0
    assert operator.get(f"{BASE}/orders/versions").json() == []
    assert list(platform.store.list("chunks/")) == list(platform.store.list("packs/")) == []
    assert list((platform.settings.data_dir / "uploads").iterdir()) == []
    assert upload(operator, data, blake3=digest(data).upper()).status_code == 201


@pytest.mark.parametrize("path", ["../escape.csv", "/etc/orders.csv", "a\\b.csv", "a//b.csv", "."])
def test_unsafe_paths_are_refused(operator: TestClient, path: str) -> None:
    create(operator)
    response = upload(operator, orders_csv(10), path=path)
    assert response.status_code == 422
    assert response.json()["field"] == "path"
    assert operator.get(f"{BASE}/orders").json()["head"] == 0


def test_bad_requests_name_the_field(operator: TestClient) -> None:
    create(operator)
    missing_path = upload(operator, orders_csv(10), path=None)
    assert (missing_path.status_code, missing_path.json()["field"]) == (422, "path")
    multipart = upload(operator, b"--x\r\n", content_type="multipart/form-data; boundary=x")
    assert (multipart.status_code, multipart.json()["field"]) == (422, "content-type")
    bad_parent = upload(operator, orders_csv(10), parent="latest")
    assert (bad_parent.status_code, bad_parent.json()["field"]) == (422, "parent")
    bad_tag = upload(operator, orders_csv(10), tag=["v7"])
    assert (bad_tag.status_code, bad_tag.json()["field"]) == (422, "tag")
    wrong_format = upload(operator, b"PAR1", path="orders.parquet")
    assert wrong_format.status_code == 422
    assert "csv" in wrong_format.json()["detail"]
    unknown_format = operator.post(BASE, json={"name": "sheets", "format": "xlsx"})
    assert (unknown_format.status_code, unknown_format.json()["field"]) == (422, "body.format")
    extra = operator.post(BASE, json={"name": "x", "format": "csv", "colour": "red"})
    assert extra.status_code == 422
    assert operator.post(BASE, json={"name": "orders", "format": "csv"}).status_code == 409
    assert operator.get(f"{BASE}/orders").json()["head"] == 0


def test_commit_on_a_stale_parent_conflicts(operator: TestClient) -> None:
    create(operator)
    assert upload(operator, orders_csv(10)).status_code == 201
    stale = upload(operator, orders_csv(20), parent="0")
    assert stale.status_code == 409
    assert "moved on to v1" in stale.json()["detail"]
    assert upload(operator, orders_csv(20), parent="v1").status_code == 201


def test_schema_incompatible_upload_lists_every_change(operator: TestClient) -> None:
    create(operator)
    assert upload(operator, orders_csv(100)).status_code == 201
    text_amounts = b"id,customer,amount\n1,c-1,lots\n2,c-2,few\n"
    refused = upload(operator, text_amounts)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["field"] == "schema"
    assert problem["mode"] == "backward"
    assert [(c["column"], c["kind"]) for c in problem["changes"]] == [("amount", "type_changed")]
    assert "amount" in problem["detail"]
    assert operator.get(f"{BASE}/orders").json()["head"] == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/missing"),
        ("GET", "/missing/versions"),
        ("GET", "/missing/versions/v1"),
        ("GET", "/missing/versions/v1/files"),
        ("GET", "/missing/versions/v1/files/a.csv"),
        ("GET", "/missing/versions/v1/stats"),
        ("GET", "/missing/versions/v1/lineage"),
        ("GET", "/missing/versions/v1/impact"),
        ("GET", "/missing/diff?from=v1"),
        ("GET", "/missing/as-of?timestamp=2024-01-01T00:00:00Z"),
        ("POST", "/missing/versions?path=a.csv"),
        ("POST", "/missing/versions/v1/verify"),
        ("DELETE", "/missing/tags/golden"),
    ],
)
def test_unknown_dataset_is_404(operator: TestClient, method: str, path: str) -> None:
    response = operator.request(method, BASE + path, content=b"x")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "missing" in response.json()["detail"]


def test_viewer_may_read_but_not_write(http: TestClient, tokens: dict[Role, str]) -> None:
    operator = {"X-API-Key": tokens[Role.OPERATOR]}
    viewer = {"X-API-Key": tokens[Role.VIEWER]}
    http.post(BASE, json={"name": "orders", "format": "csv"}, headers=operator)
    assert http.get(BASE, headers=viewer).status_code == 200
    refused = http.post(BASE, json={"name": "other", "format": "csv"}, headers=viewer)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    refused_upload = http.post(
        f"{BASE}/orders/versions",
        content=orders_csv(10),
        params={"path": "orders.csv"},
        headers=viewer,
    )
    assert refused_upload.status_code == 403
    assert http.post(f"{BASE}/gc", headers=viewer).status_code == 403
    assert http.get(f"{BASE}/orders/versions").status_code == 401
    assert http.get(f"{BASE}/orders", headers=viewer).json()["head"] == 0


def test_tar_upload_commits_every_member(operator: TestClient) -> None:
    create(operator)
    files = {"./2024/jan.csv": orders_csv(10), "2024/feb.csv": orders_csv(10, start=10)}
    archive = tar_of(files)
    response = upload(
        operator, archive, path=None, content_type="application/x-tar", blake3=digest(archive)
    )
    assert response.status_code == 201, response.text
    assert (response.json()["files"], response.json()["rows"]) == (2, 20)
    listed = operator.get(f"{BASE}/orders/versions/v1/files").json()
    assert [f["path"] for f in listed] == ["2024/feb.csv", "2024/jan.csv"]
    assert (
        operator.get(f"{BASE}/orders/versions/v1/files/2024/jan.csv").content
        == files["./2024/jan.csv"]
    )


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (tar_of({"../evil.csv": b"id\n1\n"}), "'..' segment"),
        (tar_of({"/abs.csv": b"id\n1\n"}), "absolute"),
        (tar_of({"a.csv": b"id\n1\n"}, links={"b.csv": "/etc/passwd"}), "symbolic link"),
        (tar_of({"a.csv": b"id\n1\n", "./a.csv": b"id\n2\n"}), "more than once"),
        (tar_of({}), "no file"),
        (b"not a tar archive at all", "not a readable tar archive"),
    ],
)
def test_unsafe_archives_are_refused(operator: TestClient, archive: bytes, message: str) -> None:
    create(operator)
    response = upload(operator, archive, path=None, content_type="application/x-tar")
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert operator.get(f"{BASE}/orders").json()["head"] == 0
    with_path = upload(operator, archive, path="a.csv", content_type="application/x-tar")
    assert (with_path.status_code, with_path.json()["field"]) == (422, "path")


def test_client_round_trips_files_and_directories(
    app: FastAPI, tokens: dict[Role, str], tmp_path: Path
) -> None:
    with DataVersionClient(
        "http://synapsenet.internal",
        api_key=tokens[Role.OPERATOR],
        transport=InProcessTransport(app),
    ) as client:
        client.create_dataset("orders", format="csv")
        source = tmp_path / "orders.csv"
        source.write_bytes(orders_csv(2_000))
        sent: list[int] = []
        v1 = client.upload_file("orders", source, message="first", progress=sent.append)
        assert (v1.number, v1.created, sum(sent)) == (1, True, source.stat().st_size)

        tree = tmp_path / "tree"
        (tree / "part").mkdir(parents=True)
        (tree / "part" / "a.csv").write_bytes(orders_csv(10))
        (tree / "b.csv").write_bytes(orders_csv(5, start=10))
        v2 = client.upload_directory("orders", tree, tags=["golden"])
        assert (v2.number, v2.files, v2.rows, v2.tags) == (2, 2, 15, ["golden"])

        restored: list[int] = []
        written = client.checkout("orders", "golden", tmp_path / "out", progress=restored.append)
        assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
            "b.csv",
            "part/a.csv",
        ]
        assert (tmp_path / "out" / "part" / "a.csv").read_bytes() == orders_csv(10)
        assert sum(restored) == v2.size
        with pytest.raises(ConflictError, match="exist already"):
            client.checkout("orders", "golden", tmp_path / "out")
        with pytest.raises(NotFoundError, match=r"nope\.csv"):
            client.checkout("orders", "v1", tmp_path / "other", paths=["nope.csv"])
        only = client.checkout("orders", "v1", tmp_path / "v1", paths=["orders.csv"])
        assert only[0].read_bytes() == source.read_bytes()

        assert client.diff("orders", "v1", "v2").removed == ["orders.csv"]
        with pytest.raises(InvalidError) as refused:
            client.upload("orders", b"id,customer,amount\n1,a,b\n", path="orders.csv")
        assert refused.value.extra["changes"][0]["column"] == "amount"
        with pytest.raises(InvalidError, match="no time zone"):
            client.as_of("orders", datetime(2024, 1, 1))
        assert client.as_of("orders", datetime.now(UTC)).number == 2
        assert [v.number for v in client.log("orders")] == [2, 1]


def test_recorded_transformations_appear_in_lineage_impact_and_openlineage(
    operator: TestClient, app: FastAPI
) -> None:
    create(operator)
    create(operator, "clean")
    assert upload(operator, orders_csv(20)).status_code == 201
    assert upload(operator, orders_csv(18), dataset="clean").status_code == 201
    started = datetime(2024, 5, 1, tzinfo=UTC)
    app.state.services["dataversion"].lineage.record(
        Transformation(
            id="t-1",
            type=TransformationType.CLEAN,
            name="drop_test_orders",
            inputs=(NodeRef.dataset_version("orders", 1),),
            outputs=(NodeRef.dataset_version("clean", 1),),
            started_at=started,
            finished_at=started + timedelta(seconds=3),
        )
    )

    up = operator.get(f"{BASE}/clean/versions/v1/lineage").json()
    assert up["nodes"] == [{"node": "dataset:orders@v1", "kind": "dataset_version", "distance": 1}]
    assert up["edges"] == [
        {"source": "dataset:orders@v1", "target": "dataset:clean@v1", "transformation_id": "t-1"}
    ]
    impact = operator.get(f"{BASE}/orders/versions/v1/impact").json()
    assert impact["dataset_versions"] == ["dataset:clean@v1"]
    assert [(t["id"], t["name"], t["type"]) for t in impact["transformations"]] == [
        ("t-1", "drop_test_orders", "clean")
    ]
    events = operator.get(f"{BASE}/lineage/openlineage").json()
    assert [e["eventType"] for e in events] == ["COMPLETE"]
    upstream = operator.get(f"{BASE}/lineage/openlineage", params={"node": "dataset:clean@v1"})
    assert len(upstream.json()) == 1
    assert (
        operator.get(f"{BASE}/lineage/openlineage", params={"node": "dataset:orders@v1"}).json()
        == []
    )
    malformed = operator.get(f"{BASE}/lineage/openlineage", params={"node": "clean"})
    assert (malformed.status_code, malformed.json()["field"]) == (422, "node")
    data_to_data = operator.post(
        f"{BASE}/lineage/links", json={"source": "dataset:orders@v1", "target": "dataset:clean@v1"}
    )
    assert data_to_data.status_code == 422
    operator.post(f"{BASE}/lineage/links", json={"source": "dataset:clean@v1", "target": "run:r"})
    cycle = operator.post(
        f"{BASE}/lineage/links", json={"source": "run:r", "target": "dataset:orders@v1"}
    )
    assert cycle.status_code == 409


def test_a_transformation_run_elsewhere_is_recorded_over_http(
    operator: TestClient, app: FastAPI, tokens: dict[Role, str]
) -> None:
    create(operator)
    create(operator, "clean")
    assert upload(operator, orders_csv(20)).status_code == 201
    assert upload(operator, orders_csv(18), dataset="clean").status_code == 201
    started = datetime(2024, 5, 1, tzinfo=UTC)
    step = Transformation(
        id="t-ext",
        type=TransformationType.CLEAN,
        name="drop_test_orders",
        inputs=(NodeRef.dataset_version("orders", 1),),
        outputs=(NodeRef.dataset_version("clean", 1),),
        started_at=started,
        finished_at=started + timedelta(seconds=3),
        parameters={"min_amount": 0},
    )
    with DataVersionClient(
        "http://synapsenet.internal",
        api_key=tokens[Role.OPERATOR],
        transport=InProcessTransport(app),
    ) as client:
        recorded = client.record_transformation(step)
        assert (recorded.id, recorded.type, recorded.inputs, recorded.outputs) == (
            "t-ext",
            "clean",
            ["dataset:orders@v1"],
            ["dataset:clean@v1"],
        )
        assert client.record_transformation(step.to_dict()).id == "t-ext"  # idempotent
        assert [n.node for n in client.lineage("clean", "v1").nodes] == ["dataset:orders@v1"]
        with pytest.raises(ConflictError):
            client.record_transformation({**step.to_dict(), "name": "another"})
        with pytest.raises(NotFoundError):
            client.record_transformation(
                {**step.to_dict(), "id": "t-2", "inputs": ["dataset:orders@v9"]}
            )
    bad_type = operator.post(
        f"{BASE}/lineage/transformations", json={**step.to_dict(), "id": "t-3", "type": "magic"}
    )
    assert (bad_type.status_code, bad_type.json()["field"]) == (422, "type")
    viewer = {"X-API-Key": tokens[Role.VIEWER]}
    refused = operator.post(f"{BASE}/lineage/transformations", json=step.to_dict(), headers=viewer)
    assert refused.status_code == 403


def test_damaged_chunks_are_reported_not_served(operator: TestClient, platform: Platform) -> None:
    create(operator)
    data = orders_csv(500)
    assert upload(operator, data).status_code == 201
    packs = [key for key in platform.store.list("packs/") if key.endswith(".pack")]
    assert packs
    for key in packs:
        platform.store.put(key, b"\x00garbage")

    download = operator.get(f"{BASE}/orders/versions/v1/files/orders.csv")
    assert download.status_code == 500
    assert download.json()["type"].endswith(":corrupt-data")
    report = operator.post(f"{BASE}/orders/versions/v1/verify").json()
    assert report["ok"] is False
    assert "orders.csv" in report["problems"][0]
