"""GET /api/asyncapi.json: the AsyncAPI document of every NATS subject (adapters/asyncapi.py).

Open, like /openapi.json: it describes the bus, it holds no data. Built once per process
(the models it is generated from do not change while the process runs)."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from adapters.asyncapi import build_asyncapi

router = APIRouter()


@cache
def _document() -> dict[str, Any]:
    return build_asyncapi()


# Outside the OpenAPI document, like /openapi.json and /docs: it is a document about the
# API, not an operation of it (and every route in the OpenAPI document is classified by
# who may call it: tests/e2e/test_identity.py).
@router.get("/api/asyncapi.json", include_in_schema=False)
async def asyncapi() -> JSONResponse:
    return JSONResponse(_document())
