"""Chips, their qubits and couplings; each qubit's `data` shows its current parameter versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from projections.base import Envelope, Projector, Table, ViewReader, ViewTx, iso
from projections.provenance import current_parameters

CHIP = Table(
    "chip",
    (
        ("project_id", "VARCHAR"),
        ("chip_id", "VARCHAR"),
        ("size", "INTEGER"),
        ("topology_id", "VARCHAR"),
        ("qubit_count", "INTEGER"),
        ("coupling_count", "INTEGER"),
        ("installed_at", "TIMESTAMPTZ"),
        ("backend_id", "VARCHAR"),  # "" for a chip not bound to a twin backend
        ("locked_by", "VARCHAR"),  # the execution holding the run lock, or NULL
        ("locked_at", "TIMESTAMPTZ"),
    ),
    (("project_id", "chip_id"),),
)
TARGET = Table(
    "chip_target",  # qubits and couplings: the things a task runs on
    (
        ("project_id", "VARCHAR"),
        ("chip_id", "VARCHAR"),
        ("kind", "VARCHAR"),  # qubit | coupling
        ("target_id", "VARCHAR"),
        ("ordinal", "INTEGER"),
    ),
    (("project_id", "chip_id", "kind"),),
)


class ChipProjector(Projector):
    name = "chips"
    handles = frozenset({"chip.ChipRegistered", "chip.ChipLocked", "chip.ChipUnlocked"})
    tables = (CHIP, TARGET)
    schema_version = 2  # 2: backend and run lock

    def apply(self, batch: Sequence[Envelope], tx: ViewTx) -> None:
        chips: list[dict[str, Any]] = []
        targets: list[dict[str, Any]] = []
        for env in batch:
            p = env["payload"]
            if env["type"] != "chip.ChipRegistered":
                tx.insert(CHIP, chips)  # a chip registered earlier in this batch first
                tx.insert(TARGET, targets)
                chips, targets = [], []
                locked = env["type"] == "chip.ChipLocked"
                tx.execute(
                    "UPDATE chip SET locked_by = ?, locked_at = ? WHERE project_id = ?"
                    " AND chip_id = ?",
                    [p["execution_id"] if locked else None, env["occurred_at"] if locked else None,
                     env["project_id"], p["chip_id"]],
                )  # fmt: skip
                continue
            chips.append(
                {
                    "project_id": env["project_id"],
                    "chip_id": p["chip_id"],
                    "size": p["size"],
                    "topology_id": p["topology_id"],
                    "qubit_count": len(p["qubits"]),
                    "coupling_count": len(p["couplings"]),
                    "installed_at": env["occurred_at"],
                    "backend_id": p.get("backend_id", ""),
                    "locked_by": None,
                    "locked_at": None,
                }
            )
            for kind, ids in (("qubit", p["qubits"]), ("coupling", p["couplings"])):
                targets.extend(
                    {
                        "project_id": env["project_id"],
                        "chip_id": p["chip_id"],
                        "kind": kind,
                        "target_id": t,
                        "ordinal": i,
                    }
                    for i, t in enumerate(ids)
                )
        tx.insert(CHIP, chips)
        tx.insert(TARGET, targets)


# -- queries -----------------------------------------------------------------------
def _chip_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "installed_at": iso(row["installed_at"]), "backend_id": row["backend_id"] or ""}


CHIP_COLUMNS = "chip_id, size, topology_id, qubit_count, coupling_count, installed_at, backend_id"


def lock_status(db: ViewReader, project_id: str, chip_id: str | None) -> dict[str, Any]:
    """Which chips of the project a calibration run holds (all, or the one asked)."""
    where, params = "project_id = ? AND locked_by IS NOT NULL", [project_id]
    if chip_id is not None:
        where += " AND chip_id = ?"
        params.append(chip_id)
    rows = db.rows(
        f"SELECT chip_id, locked_by, locked_at FROM chip WHERE {where} ORDER BY chip_id", params
    )
    locks = [
        {"chip_id": r["chip_id"], "execution_id": r["locked_by"], "since": iso(r["locked_at"])}
        for r in rows
    ]
    return {"lock": bool(locks), "locks": locks}


def list_chips(db: ViewReader, project_id: str) -> dict[str, Any]:
    rows = db.rows(
        f"SELECT {CHIP_COLUMNS} FROM chip WHERE project_id = ? ORDER BY installed_at, chip_id",
        [project_id],
    )
    return {"chips": [_chip_dict(r) for r in rows], "total": len(rows)}


def get_chip(db: ViewReader, project_id: str, chip_id: str) -> dict[str, Any] | None:
    rows = db.rows(
        f"SELECT {CHIP_COLUMNS} FROM chip WHERE project_id = ? AND chip_id = ?",
        [project_id, chip_id],
    )
    return _chip_dict(rows[0]) if rows else None


def list_targets(
    db: ViewReader,
    project_id: str,
    chip_id: str,
    kind: str,
    *,
    limit: int,
    offset: int,
    ids: list[str] | None = None,
) -> dict[str, Any]:
    where = "project_id = ? AND chip_id = ? AND kind = ?"
    params: list[Any] = [project_id, chip_id, kind]
    if ids:
        where += " AND list_contains(?, target_id)"
        params.append(ids)
    total = db.rows(f"SELECT count(*) AS n FROM chip_target WHERE {where}", params)[0]["n"]
    page = db.rows(
        f"SELECT target_id FROM chip_target WHERE {where} ORDER BY ordinal LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    target_ids = [r["target_id"] for r in page]
    data = current_parameters(db, project_id, chip_id, target_ids)
    items = [
        {"qid": t, "chip_id": chip_id, "status": "active", "data": data.get(t, {})}
        for t in target_ids
    ]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def get_target(db: ViewReader, project_id: str, chip_id: str, kind: str, target_id: str):
    rows = db.rows(
        "SELECT target_id FROM chip_target WHERE project_id = ? AND chip_id = ? AND kind = ?"
        " AND target_id = ?",
        [project_id, chip_id, kind, target_id],
    )
    if not rows:
        return None
    data = current_parameters(db, project_id, chip_id, [target_id])
    return {
        "qid": target_id,
        "chip_id": chip_id,
        "status": "active",
        "data": data.get(target_id, {}),
    }
