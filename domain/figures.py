"""Calibration figures: immutable blobs named by the SHA-256 of their content.

The reference platform hands clients absolute file paths on the server and reads
whatever path a client sends back. Here a figure is uploaded once, named by its digest
(`<sha256>.png` or `<sha256>.json`), and task results refer to those names; nothing
ever resolves a client-supplied path on a filesystem.
"""

from __future__ import annotations

import hashlib
import json
import re

from domain.errors import InvalidInput, TooLarge, UnsupportedMedia

MAX_FIGURE_BYTES = 8 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MEDIA_TYPES = {"png": "image/png", "json": "application/json"}
FIGURE_NAME = re.compile(r"^[0-9a-f]{64}\.(png|json)$")


def figure_name(data: bytes, media_type: str) -> str:
    """The store name of an upload, after checking it is what it claims to be."""
    kind = {v: k for k, v in MEDIA_TYPES.items()}.get(media_type.split(";")[0].strip())
    if kind is None:
        raise UnsupportedMedia(
            f"a figure must be one of {sorted(MEDIA_TYPES.values())}, not '{media_type}'",
            code="unsupported_media_type",
        )
    if not data:
        raise InvalidInput("the figure is empty", code="empty_figure")
    if len(data) > MAX_FIGURE_BYTES:
        raise TooLarge(
            f"a figure may be at most {MAX_FIGURE_BYTES} bytes; this one is {len(data)}",
            code="figure_too_large",
        )
    if kind == "png" and not data.startswith(PNG_SIGNATURE):
        raise InvalidInput("the body is not a PNG image", code="invalid_figure")
    if kind == "json":
        try:
            json.loads(data)
        except ValueError as err:
            raise InvalidInput(f"the body is not JSON: {err}", code="invalid_figure") from err
    return f"{hashlib.sha256(data).hexdigest()}.{kind}"


def media_type_of(name: str) -> str:
    return MEDIA_TYPES[name.rsplit(".", 1)[1]]
