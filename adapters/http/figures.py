"""Calibration figures: upload (qledger's), fetch one, download several as a ZIP.

The reference takes absolute server file paths from clients for both reads; here a
figure is named by its content digest and a team reads only the figures its own task
results name, so no request can reach a file the team was not meant to see.
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, Field

from adapters.figures import FigureStore
from adapters.http.deps import ProjectId, ReadAfter, ReadModels, WritableProject
from adapters.http.errors import ApiError
from domain.errors import DomainError, Kind
from domain.figures import FIGURE_NAME, MAX_FIGURE_BYTES, figure_name, media_type_of
from projections.executions import FIGURE_URL, unknown_figures

router = APIRouter(tags=["figure"])
ZIP_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}\.zip$")


class FigureStored(BaseModel):
    name: str
    path: str = Field(description="where to fetch it; what task results list")
    size: int
    media_type: str


class DownloadRequest(BaseModel):
    paths: list[str] = Field(max_length=500, description="figure paths from task results")
    filename: str = "figures.zip"


def _store(request: Request) -> FigureStore:
    return request.app.state.figures


def _name(path: str) -> str:
    """A figure path as task results list it (/api/figures/<name>), or a bare name."""
    name = path.removeprefix(FIGURE_URL)
    if not FIGURE_NAME.match(name):
        raise ApiError(
            Kind.INVALID,  # bad input, like every other: the error model's "invalid" kind
            "invalid_figure_path",
            f"'{path[:200]}' is not a figure path; use the figure_path values of a task"
            " result (server file paths are not accepted)",
        )
    return name


async def _unknown(db, project: str, names: list[str]) -> list[str]:
    """Those of `names` that no task result of the project names."""
    return await asyncio.to_thread(unknown_figures, db, project, names)


async def _read_bounded(request: Request) -> bytes:
    """The body, refused as soon as it outgrows a figure (never buffered whole)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FIGURE_BYTES:
            raise ApiError(
                Kind.TOO_LARGE,
                "figure_too_large",
                f"a figure may be at most {MAX_FIGURE_BYTES} bytes",
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/api/figures", status_code=201, response_model=FigureStored)
async def upload_figure(request: Request, project: WritableProject) -> FigureStored:
    """Store a PNG or Plotly-JSON figure; list its `path` in a task result's
    `figure_path` / `json_figure_path`. Uploading the same bytes again is a no-op."""
    data = await _read_bounded(request)
    try:
        name = figure_name(data, request.headers.get("content-type", ""))
    except DomainError as err:
        raise ApiError.of(err) from err
    await _store(request).put(name, data)
    return FigureStored(
        name=name, path=FIGURE_URL + name, size=len(data), media_type=media_type_of(name)
    )


async def _fetch(request: Request, name: str) -> bytes:
    data = await _store(request).get(name)
    if data is None:  # named by a task result but not in the bucket: the bucket was lost
        raise ApiError(
            Kind.UNAVAILABLE, "figure_unavailable", f"figure '{name}' is missing from the store"
        )
    return data


@router.get("/api/figures/{name}", dependencies=[ReadAfter])
async def get_figure(name: str, request: Request, project: ProjectId, db: ReadModels):
    """One figure that a task result of the project names."""
    name = _name(name)
    if await _unknown(db, project, [name]):
        raise ApiError(Kind.NOT_FOUND, "figure_not_found", f"no task result names figure {name}")
    return Response(await _fetch(request, name), media_type=media_type_of(name))


@router.get("/api/executions/figure", tags=["execution"], dependencies=[ReadAfter])
async def get_execution_figure(
    path: Annotated[str, Query(description="a figure_path value of a task result")],
    request: Request,
    project: ProjectId,
    db: ReadModels,
):
    """The reference's figure read, by a task result's figure path."""
    return await get_figure(path, request, project, db)


@router.post("/api/task-results/figures/download", tags=["task-result"], dependencies=[ReadAfter])
async def download_figures(
    body: Annotated[DownloadRequest, Body()], request: Request, project: ProjectId, db: ReadModels
):
    """The figures as one ZIP archive, each under its name. 400 for no paths or a path
    no task result of the project names, as in the reference."""
    if not body.paths:
        raise ApiError(Kind.MALFORMED, "no_paths", "give at least one figure path")
    if not ZIP_NAME.match(body.filename):
        raise ApiError(
            Kind.MALFORMED, "invalid_filename", "filename must match [A-Za-z0-9._-]{1,100}.zip"
        )
    names = list(dict.fromkeys(_name(p) for p in body.paths))
    missing = await _unknown(db, project, names)
    if missing:  # 400 as the reference says: the request as a whole is unusable
        raise ApiError(
            Kind.MALFORMED, "unknown_figure_paths", f"no task result names figure(s) {missing}"
        )
    buffer = io.BytesIO()
    # PNGs are already compressed; JSON figures shrink well.
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.writestr(name, await _fetch(request, name))
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{body.filename}"'},
    )
