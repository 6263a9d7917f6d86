"""A synchronous httpx transport that hands requests to an ASGI app in the same process.

httpx's own :class:`httpx.ASGITransport` is async-only, but :class:`ServiceClient` is sync
and is called from worker threads that serve requests. :class:`InProcessTransport` runs the
app on an event loop of its own (an anyio blocking portal in a background thread), so
single-process and multi-process deployments run the same client code::

    client = ServiceClient("http://synapsenet.internal", transport=InProcessTransport(app))
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

logger = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
"""An ASGI 3 application (FastAPI, Starlette, ...)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_INTERNAL_ERROR_BODY = b"Internal Server Error"


@dataclass
class _Outcome:
    """What the app sent back, gathered on the event loop and read in the calling thread."""

    status: int | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    complete: bool = False


class InProcessTransport(httpx.BaseTransport):
    """Serve httpx requests by calling an ASGI app in this process, from any thread.

    The app runs on one long-lived event loop per transport, started on the first request
    and stopped by :meth:`close` (a later request starts a new one, so a transport shared by
    several clients survives one of them closing). The app's lifespan is not run: in
    single-process mode the server that hosts the app has already run it.

    Request bodies are streamed to the app chunk by chunk with back-pressure; the response
    is collected in full. Like a real server, an exception the app raises before it starts
    a response becomes a plain ``500 Internal Server Error`` (and is logged), and one raised
    mid-response drops the "connection" (:class:`httpx.RemoteProtocolError`). The request's
    read timeout bounds the time the app may take to answer.

    Call it from threads without a running event loop (a sync FastAPI endpoint runs in such
    a worker thread, so nested in-process calls work). Calling it from the transport's own
    event loop would deadlock and raises :class:`RuntimeError` instead.

    Args:
        app: The ASGI application to call.
        raise_app_exceptions: Re-raise exceptions from the app in the calling thread instead
            of answering 500; useful to debug tests.
        root_path: ASGI ``root_path`` for apps mounted under a prefix.
        client: The ``(host, port)`` the app sees as the remote peer.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        raise_app_exceptions: bool = False,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        self.app = app
        self.raise_app_exceptions = raise_app_exceptions
        self.root_path = root_path
        self.client = client
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._portal_exit: contextlib.ExitStack | None = None
        self._loop_thread_id: int | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Call the app with ``request`` and return its complete response.

        Args:
            request: The request httpx built.

        Returns:
            The app's response, with its body already in memory.

        Raises:
            httpx.ReadTimeout: The app took longer than the request's read timeout.
            httpx.RemoteProtocolError: The app failed after it had started its response.
            RuntimeError: Called from the transport's own event loop thread.
        """
        portal = self._running_portal()
        scope = self._scope(request)
        if isinstance(request.stream, httpx.ByteStream):
            # The body is already in memory: hand it over whole and skip the pump.
            preloaded: deque[bytes] = deque([request.read()])
            future = portal.start_task_soon(self._call_app, scope, preloaded, None)
        elif isinstance(request.stream, httpx.SyncByteStream):
            send_body, receive_body = anyio.create_memory_object_stream[bytes](0)
            future = portal.start_task_soon(self._call_app, scope, None, receive_body)
            self._pump_body(portal, request.stream, send_body, future)
        else:
            raise TypeError("InProcessTransport is synchronous; use it with httpx.Client.")

        timeout = request.extensions.get("timeout", {}).get("read")
        try:
            outcome = future.result(timeout=timeout)
        except FutureTimeoutError:
            future.cancel()
            raise httpx.ReadTimeout(
                f"The in-process app did not answer {request.method} {request.url} "
                f"within {timeout} s.",
                request=request,
            ) from None
        return self._response(request, outcome)

    def close(self) -> None:
        """Stop the event loop, waiting for calls still in flight to finish."""
        with self._lock:
            exit_stack = self._portal_exit
            if exit_stack is None:
                return
            if threading.get_ident() == self._loop_thread_id:
                raise RuntimeError(
                    "InProcessTransport.close() was called from its own event loop thread; "
                    "close it from another thread."
                )
            self._portal, self._portal_exit, self._loop_thread_id = None, None, None
        exit_stack.close()

    def _running_portal(self) -> BlockingPortal:
        with self._lock:
            if self._portal is None:
                exit_stack = contextlib.ExitStack()
                portal = exit_stack.enter_context(
                    start_blocking_portal(name=f"synapsenet-inprocess-{id(self):x}")
                )
                self._loop_thread_id = portal.call(threading.get_ident)
                self._portal, self._portal_exit = portal, exit_stack
            if threading.get_ident() == self._loop_thread_id:
                raise RuntimeError(
                    "InProcessTransport was called from the event loop that runs its app, "
                    "which would deadlock. Call the client from a sync endpoint (FastAPI runs "
                    "those in worker threads) or wrap it in anyio.to_thread.run_sync()."
                )
            return self._portal

    def _scope(self, request: httpx.Request) -> dict[str, Any]:
        url = request.url
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?", 1)[0],
            "query_string": url.query,
            "root_path": self.root_path,
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "server": (url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80)),
            "client": self.client,
            "extensions": {},
        }

    @staticmethod
    def _pump_body(
        portal: BlockingPortal,
        chunks: Iterable[bytes],
        send_body: MemoryObjectSendStream[bytes],
        future: Future[_Outcome],
    ) -> None:
        # The body is read in the calling thread, where the (sync) stream belongs; each
        # chunk waits until the app takes it, so a large upload never sits in memory whole.
        try:
            for chunk in chunks:
                if chunk:
                    portal.call(send_body.send, chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the app answered without reading the whole body, as apps may
        except BaseException:
            # A truncated body must not look complete to the app: abort the call instead.
            future.cancel()
            raise
        finally:
            with contextlib.suppress(RuntimeError):
                portal.call(send_body.aclose)

    async def _call_app(
        self,
        scope: dict[str, Any],
        preloaded: deque[bytes] | None,
        receive_body: MemoryObjectReceiveStream[bytes] | None,
    ) -> _Outcome:
        outcome = _Outcome()
        response_complete = anyio.Event()
        body_complete = False
        is_head = scope["method"] == "HEAD"

        async def next_chunk() -> bytes | None:
            if preloaded is not None:
                return preloaded.popleft() if preloaded else None
            assert receive_body is not None
            try:
                return await receive_body.receive()
            except anyio.EndOfStream:
                return None

        async def receive() -> Message:
            nonlocal body_complete
            if body_complete:
                await response_complete.wait()
                return {"type": "http.disconnect"}
            chunk = await next_chunk()
            if chunk is None:
                body_complete = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if outcome.status is not None:
                    raise RuntimeError("The app sent 'http.response.start' twice.")
                outcome.status = int(message["status"])
                outcome.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                if outcome.status is None or outcome.complete:
                    raise RuntimeError("The app sent 'http.response.body' outside of a response.")
                body = message.get("body", b"")
                if body and not is_head:
                    outcome.body.append(bytes(body))
                if not message.get("more_body", False):
                    outcome.complete = True
                    response_complete.set()

        try:
            await self.app(scope, receive, send)
        except Exception:
            if self.raise_app_exceptions:
                raise
            # Starlette sends its 500 page before re-raising, so a complete response here
            # is the app's own answer; either way the failure belongs in the log.
            logger.exception("Exception in ASGI application (in-process %s)", scope["path"])
            if outcome.status is None:
                outcome.status = 500
                outcome.headers = [(b"content-type", b"text/plain; charset=utf-8")]
                outcome.body = [] if is_head else [_INTERNAL_ERROR_BODY]
                outcome.complete = True
        finally:
            response_complete.set()
            if receive_body is not None:
                await receive_body.aclose()
        if outcome.status is None:
            logger.error("ASGI app returned without starting a response (%s)", scope["path"])
            outcome.status = 500
            outcome.headers = [(b"content-type", b"text/plain; charset=utf-8")]
            outcome.body = [] if is_head else [_INTERNAL_ERROR_BODY]
            outcome.complete = True
        return outcome

    @staticmethod
    def _response(request: httpx.Request, outcome: _Outcome) -> httpx.Response:
        if not outcome.complete:
            raise httpx.RemoteProtocolError(
                f"The in-process app stopped before completing its response to "
                f"{request.method} {request.url}.",
                request=request,
            )
        assert outcome.status is not None
        return httpx.Response(
            outcome.status,
            headers=outcome.headers,
            stream=httpx.ByteStream(b"".join(outcome.body)),
            extensions={"http_version": b"HTTP/1.1"},
        )
