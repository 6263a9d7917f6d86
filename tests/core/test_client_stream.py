"""``ServiceClient.stream``: bodies and answers too large to hold in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from synapsenet.core.asgi_transport import InProcessTransport
from synapsenet.core.client import ServiceClient
from synapsenet.errors import NotFoundError, SynapseNetError, UnavailableError


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        total = 0
        async for block in request.stream():
            total += len(block)
        return {"received": total}

    @app.get("/download")
    def download() -> StreamingResponse:
        def blocks() -> Iterator[bytes]:
            for _ in range(64):
                yield b"x" * 65536

        return StreamingResponse(blocks(), media_type="application/octet-stream")

    @app.get("/missing")
    def missing() -> JSONResponse:
        problem = NotFoundError("no such file").to_problem()
        return JSONResponse(problem, status_code=404, media_type="application/problem+json")

    @app.get("/broken")
    def broken() -> JSONResponse:
        return JSONResponse({"oops": True}, status_code=500)

    return app


@pytest.fixture
def client() -> Iterator[ServiceClient]:
    with ServiceClient("http://peer", transport=InProcessTransport(make_app())) as peer:
        yield peer


def test_a_streamed_body_arrives_whole(client: ServiceClient) -> None:
    blocks = (b"a" * 1000 for _ in range(500))
    with client.stream("POST", "/upload", content=blocks) as response:
        response.read()
        assert response.json() == {"received": 500_000}


def test_a_streamed_answer_is_read_block_by_block(client: ServiceClient) -> None:
    with client.stream("GET", "/download") as response:
        sizes = [len(block) for block in response.iter_bytes()]
    assert sum(sizes) == 64 * 65536


def test_errors_map_back_and_count_against_the_circuit(client: ServiceClient) -> None:
    with pytest.raises(NotFoundError, match="no such file"), client.stream("GET", "/missing"):
        pass
    assert client.breaker.consecutive_failures == 0
    with pytest.raises(SynapseNetError, match="HTTP 500"), client.stream("GET", "/broken"):
        pass
    assert client.breaker.consecutive_failures == 1


def test_an_unreachable_peer_is_unavailable() -> None:
    with (
        ServiceClient("http://127.0.0.1:1", timeout=1.0) as peer,
        pytest.raises(UnavailableError, match=r"127\.0\.0\.1:1"),
        peer.stream("GET", "/anything"),
    ):
        pass
