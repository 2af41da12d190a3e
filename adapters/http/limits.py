"""The outermost layer of the HTTP API: no request body reaches a route unbounded.

A body over its limit is refused from its Content-Length, before a byte of it is read,
or as soon as the bytes read pass the limit (413 `body_too_large`); a JSON body is
checked on its bytes (adapters/body_limits.py) before FastAPI parses it. What passes is
handed on unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from adapters.body_limits import BodyRefused, check_json
from adapters.http.errors import status_of
from domain.errors import Kind

JSON_TYPES = (b"application/json", b"text/json")


class BodyLimits:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer the response too)."""

    def __init__(self, app, *, max_bytes: int, per_path: Mapping[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.max_bytes)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, "invalid_content_length", "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _too_large(send, limit)
                return
        elif b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        kind = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if body and (kind in JSON_TYPES or kind.endswith(b"+json")):
            try:
                check_json(body)
            except BodyRefused as err:
                await _refuse(send, err.kind, err.code, err.message)
                return
        elif body and kind == b"application/x-www-form-urlencoded":
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                await _refuse(send, Kind.INVALID, "invalid_utf8", "the form is not UTF-8")
                return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # what follows the body: a disconnect

    return replayed


async def _too_large(send, limit: int) -> None:
    await _refuse(
        send,
        Kind.TOO_LARGE,
        "body_too_large",
        f"the request body exceeds {limit} bytes (max_body_bytes)",
    )


async def _refuse(send, kind: Kind, code: str, message: str) -> None:
    body = orjson.dumps({"code": code, "message": message})
    await send(
        {
            "type": "http.response.start",
            "status": status_of(kind),
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread rest of the body is not ours to drain
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
