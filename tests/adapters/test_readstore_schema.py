"""A projector whose table layout changed gets its tables dropped and refilled from the
store on the next start, instead of serving rows of the old shape (or failing on a
missing column)."""

from __future__ import annotations

from pathlib import Path

from adapters.readstore import ReadStore
from projections.base import Projector, Table

OLD = Table("thing", (("id", "VARCHAR"),))
NEW = Table("thing", (("id", "VARCHAR"), ("size", "INTEGER")))


class ThingV1(Projector):
    name = "things"
    handles = frozenset({"x.Thing"})
    tables = (OLD,)

    def apply(self, batch, tx):
        tx.insert(OLD, [{"id": e["payload"]["id"]} for e in batch])


class ThingV2(ThingV1):
    tables = (NEW,)
    schema_version = 2

    def apply(self, batch, tx):
        tx.insert(NEW, [{"id": e["payload"]["id"], "size": e["payload"]["size"]} for e in batch])


class Other(Projector):
    name = "others"
    handles = frozenset({"x.Other"})
    tables = (Table("other", (("id", "VARCHAR"),)),)

    def apply(self, batch, tx):
        tx.insert(self.tables[0], [{"id": e["payload"]["id"]} for e in batch])


def events() -> list[dict]:
    return [
        {"position": 1, "type": "x.Thing", "payload": {"id": "a", "size": 1}},
        {"position": 2, "type": "x.Other", "payload": {"id": "o"}},
        {"position": 3, "type": "x.Thing", "payload": {"id": "b", "size": 2}},
    ]


def test_a_changed_layout_is_rebuilt_from_position_zero(tmp_path: Path):
    path = tmp_path / "read.duckdb"
    read = ReadStore(path, [ThingV1(), Other()])
    assert read.apply(events()) == 3
    read.close()

    read = ReadStore(path, [ThingV2(), Other()])
    assert read.positions == {"things": 0, "others": 3}
    assert read.position == 0  # the runner's catch-up starts here
    assert read.rows("SELECT * FROM thing") == []
    read.apply(events())  # what catch-up replays
    assert read.rows("SELECT id, size FROM thing ORDER BY id") == [
        {"id": "a", "size": 1},
        {"id": "b", "size": 2},
    ]
    assert read.rows("SELECT id FROM other") == [{"id": "o"}]  # applied once, not twice
    read.close()

    read = ReadStore(path, [ThingV2(), Other()])  # same layout: kept as it is
    assert read.positions == {"things": 3, "others": 3}
    read.close()
