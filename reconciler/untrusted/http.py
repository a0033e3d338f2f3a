"""HTTP for answers we do not trust: one deadline per request, and a cap on the body.

httpx's timeouts bound each socket operation, not the request: a server that sends a
byte a second never trips a read timeout, and a probe of it never ends. Here every
connect, read and write of one request shares one deadline (the request's timeout, its
largest part), as the kubelet bounds a probe and Prometheus a scrape (`scrape_timeout`);
a body larger than the cap is an error, as Prometheus's `body_size_limit` makes it.
Every client that talks to a fleet host or a notification channel uses this transport
(`bounded_client`).

One connection per request: the deadline belongs to that connection alone, and a
probe measures a fresh connect, as the kubelet's does.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from reconciler.untrusted.limits import MAX_BODY_BYTES

DEFAULT_DEADLINE_S = 10.0
DEADLINE_PASSED = "no complete answer within the request's deadline"


class AnswerTooLarge(httpx.TransportError):
    """The body went past the transport's cap; what was read is dropped."""


# httpcore's errors and httpx's share their names; the most specific come first.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = tuple(
    (getattr(httpcore, name), getattr(httpx, name))
    for name in (
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ConnectError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "LocalProtocolError",
        "UnsupportedProtocol",
        "ProtocolError",
        "NetworkError",
    )
)


def _as_httpx(exc: Exception) -> Exception:
    for theirs, ours in _ERRORS:
        if isinstance(exc, theirs):
            return ours(str(exc) or type(exc).__name__)
    return exc


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self.inner, self.deadline = inner, deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise error(DEADLINE_PASSED)
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self.inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))
        except httpcore.ReadTimeout:
            self._left(None, httpcore.ReadTimeout)  # the deadline, rather than one read's
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self.inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))
        except httpcore.WriteTimeout:
            self._left(None, httpcore.WriteTimeout)
            raise

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = self._left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self.inner.start_tls(ssl_context, server_hostname, left), self.deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: float) -> None:
        self.inner, self.deadline = httpcore.SyncBackend(), deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("no connection within the request's deadline")
        bounded = left if timeout is None else min(timeout, left)
        stream = self.inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream, self.deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used here")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _CappedBody(httpx.SyncByteStream):
    """The response body, cut off with `AnswerTooLarge` past `limit` bytes."""

    def __init__(self, chunks: Iterable[bytes], pool: httpcore.ConnectionPool, limit: int) -> None:
        self.chunks, self.pool, self.limit = chunks, pool, limit

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        try:
            for chunk in self.chunks:
                seen += len(chunk)
                if seen > self.limit:
                    raise AnswerTooLarge(f"answer larger than {self.limit} bytes: not read")
                yield chunk
        except httpcore.TimeoutException as exc:
            raise _as_httpx(exc) from None
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise _as_httpx(exc) from None

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
        self.pool.close()


@functools.cache
def _tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def _total(request: httpx.Request) -> float:
    """The request's deadline: the largest of its timeouts (httpx gives each phase one)."""
    timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
    given = [t for t in timeouts.values() if t is not None]
    return max(given) if given else DEFAULT_DEADLINE_S


class BoundedTransport(httpx.BaseTransport):
    """httpx transport with a total deadline per request and a body cap."""

    def __init__(self, max_body: int = MAX_BODY_BYTES) -> None:
        self.max_body = max_body

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        deadline = time.monotonic() + _total(request)
        pool = httpcore.ConnectionPool(
            ssl_context=_tls(),
            network_backend=_DeadlineBackend(deadline),
            max_connections=1,
            max_keepalive_connections=0,
        )
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=[
                *((k, v) for k, v in request.headers.raw if k.lower() != b"accept-encoding"),
                (b"Accept-Encoding", b"identity"),  # a compressed bomb would pass the cap
            ],
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = pool.handle_request(core)
        except Exception as exc:
            pool.close()
            raise _as_httpx(exc) from None
        assert isinstance(response.stream, Iterable)
        encoding = b",".join(v for k, v in response.headers if k.lower() == b"content-encoding")
        if encoding.strip().lower() not in (b"identity", b""):
            pool.close()
            raise httpx.DecodingError(
                f"compressed answer ({encoding.decode(errors='replace')}) refused"
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CappedBody(response.stream, pool, self.max_body),
            extensions=response.extensions,
        )


def bounded_client(
    max_body: int = MAX_BODY_BYTES, timeout: float = DEFAULT_DEADLINE_S
) -> httpx.Client:
    """The client for every request to a fleet host or a notification channel."""
    return httpx.Client(transport=BoundedTransport(max_body), trust_env=False, timeout=timeout)


def read_at_most(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of a streamed response's body, and whether there was more
    (the kubelet reads 10 KiB of a probe's answer and ignores the rest)."""
    kept, size = bytearray(), 0
    try:
        for chunk in response.iter_raw():
            size += len(chunk)
            kept += chunk[: max(0, limit - len(kept))]
            if size > limit:
                return bytes(kept), True
    except httpx.StreamConsumed:  # a body read already (a test's MockTransport)
        return response.content[:limit], len(response.content) > limit
    return bytes(kept), False
