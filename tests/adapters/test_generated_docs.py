"""The documents generated from the code (adapters/docs_gen.py) are the ones committed:
a change to a model, a route or a registry must come with `qledger docs`."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters import docs_gen
from adapters.cli import main
from adapters.docs_gen import Generated, StaleMarkers, between, whole


def test_every_generated_document_is_current(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["docs", "--check"])
    # the check's own message names the stale files and says to run `qledger docs`
    assert stopped.value.code == 0, capsys.readouterr().err


def test_the_check_names_stale_documents_and_writes_nothing(tmp_path, monkeypatch, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    page = "# Page\n<!-- part:begin -->\nold\n<!-- part:end -->\nprose\n"
    (docs / "page.md").write_text(page)
    monkeypatch.setattr(docs_gen, "GENERATED", [
        Generated("docs/whole.txt", whole(lambda: "whole\n")),
        Generated("docs/page.md", between("part", lambda: "new\n")),
    ])  # fmt: skip
    assert docs_gen.run(check=True, root=tmp_path) == 1
    err = capsys.readouterr().err
    assert "docs/whole.txt" in err and "docs/page.md" in err and "qledger docs" in err
    assert not (docs / "whole.txt").exists() and (docs / "page.md").read_text() == page
    assert docs_gen.run(check=False, root=tmp_path) == 0
    assert (docs / "page.md").read_text() == page.replace("old", "new")
    assert docs_gen.run(check=True, root=tmp_path) == 0


def test_a_section_is_replaced_and_the_prose_around_it_kept():
    render = between("routes", lambda: "| new |\n")
    page = "# Title\n\nprose\n<!-- routes:begin -->\n| old |\n<!-- routes:end -->\nmore prose\n"
    assert render(page) == (
        "# Title\n\nprose\n<!-- routes:begin -->\n| new |\n<!-- routes:end -->\nmore prose\n"
    )
    assert render(render(page)) == render(page)
    for broken in (None, "no markers", "<!-- routes:end -->\n<!-- routes:begin -->\n"):
        with pytest.raises(StaleMarkers):
            render(broken)


def test_a_checkout_without_docs_is_told_so(tmp_path: Path):
    with pytest.raises(SystemExit, match="source checkout"):
        docs_gen.run(check=True, root=tmp_path)
