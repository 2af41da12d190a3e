"""Figures over HTTP against a running `qledger serve`: upload, name them in a task
result, read one, download several as a ZIP, and no way to reach another team's."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import Serve, running

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
PLOT = b'{"data": [{"x": [1, 2], "y": [3, 4]}], "layout": {}}'


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("serve")))


@pytest.fixture(scope="module")
def api(served: Serve) -> httpx.Client:
    client = served.client()
    assert client.post("/api/chips", json={"chip_id": "c4", "size": 4}).status_code == 200
    r = client.post("/api/executions", json={"chip_id": "c4", "execution_id": "e1"})
    assert r.status_code == 200, r.text
    return client


def upload(api: httpx.Client, data: bytes, media_type: str) -> httpx.Response:
    return api.post("/api/figures", content=data, headers={"Content-Type": media_type})


def record(api: httpx.Client, task_id: str, **figures) -> httpx.Response:
    """Record a task result; later reads of this client wait until it is projected."""
    r = api.post(
        "/api/executions/e1/tasks",
        json={
            "task_id": task_id,
            "task_name": "CheckT1",
            "qid": "1",
            "output_parameters": {"t1": {"value": 90.0, "unit": "us"}},
            "start_at": f"2026-05-01T10:0{len(task_id)}:00Z",
            "end_at": f"2026-05-01T10:0{len(task_id)}:30Z",
            **figures,
        },
    )
    if r.status_code == 200:
        api.headers["X-Min-Position"] = str(r.json()["position"])
    return r


def test_a_task_result_lists_its_figures_and_they_download_as_a_zip(api: httpx.Client):
    png = upload(api, PNG, "image/png")
    assert png.status_code == 201, png.text
    assert png.json()["name"] == hashlib.sha256(PNG).hexdigest() + ".png"
    assert upload(api, PNG, "image/png").json() == png.json()  # same bytes, same name
    plot = upload(api, PLOT, "application/json").json()

    r = record(api, "t1", figure_path=[png.json()["name"]], json_figure_path=[plot["name"]])
    assert r.status_code == 200, r.text

    result = api.get("/api/tasks/t1/result").json()
    assert result["figure_path"] == [png.json()["path"]]
    assert result["json_figure_path"] == [plot["path"]]
    execution = api.get("/api/executions/e1").json()
    assert execution["task"][0]["figure_path"] == [png.json()["path"]]

    one = api.get(result["figure_path"][0])
    assert (one.status_code, one.headers["content-type"], one.content) == (200, "image/png", PNG)
    by_path = api.get("/api/executions/figure", params={"path": result["figure_path"][0]})
    assert by_path.content == PNG

    r = api.post(
        "/api/task-results/figures/download",
        json={"paths": result["figure_path"] + result["json_figure_path"], "filename": "t1.zip"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert 'filename="t1.zip"' in r.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert {n: archive.read(n) for n in archive.namelist()} == {
        png.json()["name"]: PNG,
        plot["name"]: PLOT,
    }


def test_a_task_result_naming_a_figure_never_uploaded_is_refused(api: httpx.Client):
    before = api.get("/api/health").json()["store_position"]
    r = record(api, "t22", figure_path=["0" * 64 + ".png"])
    assert r.status_code == 422 and r.json()["code"] == "unknown_figure", r.text
    r = record(api, "t22", figure_path=["/var/lib/qledger/figures/x.png"])
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert api.get("/api/health").json()["store_position"] == before


def test_bad_uploads_and_downloads_get_coded_errors(api: httpx.Client):
    assert upload(api, b"GIF89a", "image/gif").status_code == 415
    r = upload(api, b"not a png", "image/png")
    assert (r.status_code, r.json()["code"]) == (422, "invalid_figure")
    r = upload(api, b"\x89PNG\r\n\x1a\n" + b"\x00" * (8 * 1024 * 1024), "image/png")
    assert (r.status_code, r.json()["code"]) == (413, "figure_too_large")

    download = "/api/task-results/figures/download"
    r = api.post(download, json={"paths": []})
    assert (r.status_code, r.json()["code"]) == (400, "no_paths")
    r = api.post(download, json={"paths": ["/etc/passwd"]})
    assert (r.status_code, r.json()["code"]) == (422, "invalid_figure_path")
    # Uploaded but named by no task result: not downloadable yet.
    stray = upload(api, PNG + b"stray", "image/png").json()
    r = api.post(download, json={"paths": [stray["path"]]})
    assert (r.status_code, r.json()["code"]) == (400, "unknown_figure_paths")
    assert api.get(stray["path"]).status_code == 404
    r = api.post(download, json={"paths": [stray["path"]], "filename": "../x.zip"})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_filename")


def test_another_team_cannot_read_a_figure_by_its_name(api: httpx.Client):
    png = upload(api, PNG + b"team", "image/png").json()
    assert record(api, "t333", figure_path=[png["name"]]).status_code == 200
    other = api.post("/api/projects", json={"name": "other team"}).json()["project_id"]
    headers = {"X-Project-Id": other}
    assert api.get(png["path"], headers=headers).status_code == 404
    r = api.post(
        "/api/task-results/figures/download", json={"paths": [png["path"]]}, headers=headers
    )
    assert r.status_code == 400
    assert api.get(png["path"]).status_code == 200
