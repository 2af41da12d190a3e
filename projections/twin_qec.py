"""QEC sessions' read model: each session's status, and each step (rounds measured,
corrections, the end) as recorded, for re-reading a round and for the session's trace."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson

from domain.errors import Kind
from projections.base import (
    Envelope,
    Projector,
    QueryError,
    Table,
    ViewReader,
    ViewTx,
    iso,
    to_json,
)

SESSION = Table(
    "qec_session",
    (
        ("project_id", "VARCHAR"),
        ("session_id", "VARCHAR"),
        ("backend_id", "VARCHAR"),
        ("code_family", "VARCHAR"),
        ("code_distance", "INTEGER"),
        ("basis", "VARCHAR"),
        ("mode", "VARCHAR"),
        ("shots", "INTEGER"),
        ("seed", "BIGINT"),
        ("rounds_limit", "BIGINT"),
        ("num_stabilizers", "INTEGER"),
        ("num_data_qubits", "INTEGER"),
        ("rounds", "BIGINT"),
        ("corrections", "BIGINT"),
        ("status", "VARCHAR"),
        ("result_json", "VARCHAR"),
        ("created_at", "TIMESTAMPTZ"),
        ("ended_at", "TIMESTAMPTZ"),
        ("last_position", "BIGINT"),
    ),
    (("project_id", "session_id"),),
)
STEP = Table(
    "qec_step",
    (
        ("project_id", "VARCHAR"),
        ("session_id", "VARCHAR"),
        ("kind", "VARCHAR"),  # rounds | correction | end
        ("first_round", "BIGINT"),
        ("count", "INTEGER"),
        ("syndromes", "VARCHAR"),  # base64, rows packed little-endian (see the event)
        ("detection_events", "VARCHAR"),
        ("detection_fraction_json", "VARCHAR"),
        ("correction_json", "VARCHAR"),
        ("noise_json", "VARCHAR"),
        ("occurred_at", "TIMESTAMPTZ"),
        ("position", "BIGINT"),
    ),
    (("project_id", "session_id"),),
)
ACTIVE, ENDED = "active", "ended"


class QecProjector(Projector):
    name = "twin_qec"
    handles = frozenset(
        {
            "twin.QecSessionCreated",
            "twin.QecRoundsMeasured",
            "twin.QecCorrectionApplied",
            "twin.QecSessionEnded",
        }
    )
    tables = (SESSION, STEP)

    def apply(self, batch: Sequence[Envelope], tx: ViewTx) -> None:
        # A round or a correction is one inserted row; the session's counts are derived
        # from its steps when read. (An UPDATE per round was most of the projector's work
        # per event, on the cores a decoder loop shares with it.)
        sessions, steps = [], []
        for env in batch:
            p, kind = env["payload"], env["type"]
            key = (env["project_id"], p["session_id"])
            base = {"project_id": key[0], "session_id": key[1],
                    "occurred_at": env["occurred_at"], "position": env["position"]}  # fmt: skip
            if kind == "twin.QecSessionCreated":
                sessions.append({
                    **{k: p[k] for k in ("session_id", "backend_id", "code_family",
                       "code_distance", "basis", "mode", "shots", "seed", "rounds_limit",
                       "num_stabilizers", "num_data_qubits")},
                    "project_id": key[0], "rounds": 0, "corrections": 0, "status": ACTIVE,
                    "created_at": env["occurred_at"], "last_position": env["position"],
                })  # fmt: skip
            elif kind == "twin.QecRoundsMeasured":
                steps.append({**base, "kind": "rounds", "first_round": p["first_round"],
                              "count": p["count"], "syndromes": p["syndromes"],
                              "detection_events": p["detection_events"],
                              "detection_fraction_json": to_json(p["detection_fraction"]),
                              "noise_json": to_json(p["noise"]) if p["noise"] else None})  # fmt: skip
            elif kind == "twin.QecCorrectionApplied":
                steps.append({**base, "kind": "correction", "first_round": p["round_index"],
                              "correction_json": to_json(p["correction_bits"])})  # fmt: skip
            else:
                steps.append({**base, "kind": "end", "first_round": p["total_rounds"],
                              "noise_json": to_json(p["noise"]) if p["noise"] else None})  # fmt: skip
                tx.insert(SESSION, sessions)  # a session's row before its end
                sessions = []
                tx.execute(
                    "UPDATE qec_session SET status = ?, result_json = ?, ended_at = ?::TIMESTAMPTZ,"
                    " rounds = ?, corrections = ?, last_position = ?"
                    " WHERE project_id = ? AND session_id = ?",
                    [ENDED, to_json({**p["result"], "total_rounds": p["total_rounds"],
                     "corrections_received": p["corrections_received"]}),
                     env["occurred_at"], p["total_rounds"], p["corrections_received"],
                     env["position"], *key],
                )  # fmt: skip
        tx.insert(SESSION, sessions)
        tx.insert(STEP, steps)


# -- queries -----------------------------------------------------------------------
def session_row(db: ViewReader, project_id: str, session_id: str) -> dict[str, Any]:
    """The session, with its rounds, corrections and last position counted from its
    steps (an ended session has them in its row)."""
    rows = db.rows(
        "SELECT s.* REPLACE ("
        " coalesce(st.rounds, 0) AS rounds, coalesce(st.corrections, 0) AS corrections,"
        " greatest(s.last_position, coalesce(st.last_position, 0)) AS last_position)"
        " FROM qec_session s LEFT JOIN ("
        "  SELECT max(CASE WHEN kind = 'rounds' THEN first_round + count END) AS rounds,"
        "   count(*) FILTER (WHERE kind = 'correction') AS corrections,"
        "   max(position) AS last_position"
        "  FROM qec_step WHERE project_id = ? AND session_id = ?) st ON true"
        " WHERE s.project_id = ? AND s.session_id = ?",
        [project_id, session_id, project_id, session_id],
    )
    if not rows:
        raise QueryError(
            Kind.NOT_FOUND, "session_not_found", f"QEC session '{session_id}' does not exist"
        )
    return rows[0]


def session_status(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "session_id": row["session_id"],
        "backend_id": row["backend_id"],
        "code_family": row["code_family"],
        "code_distance": row["code_distance"],
        "basis": row["basis"],
        "mode": row["mode"],
        "shots": row["shots"],
        "status": row["status"],
        "active": row["status"] == ACTIVE,
        "current_round": row["rounds"],
        "rounds_limit": row["rounds_limit"],
        "num_stabilizers": row["num_stabilizers"],
        "num_data_qubits": row["num_data_qubits"],
        "corrections_received": row["corrections"],
        "created_at": iso(row["created_at"]),
        "ended_at": iso(row["ended_at"]),
        "position": row["last_position"],
    }
    if row["result_json"]:
        out["result"] = orjson.loads(row["result_json"])
    return out


def unpack_row(packed: str, index: int, width: int) -> list[int]:
    """Row `index` of a base64 block of rows, each `width` bits packed little-endian."""
    raw = base64.b64decode(packed)
    nbytes = (width + 7) // 8
    row = raw[index * nbytes : (index + 1) * nbytes]
    return [(row[j // 8] >> (j % 8)) & 1 for j in range(width)]


def packed_word(bits: list[int]) -> int | list[int]:
    """The reference's meas_data_packed: bit i (LSB first) in one 32-bit integer; wider
    than 32 bits, a list of 32-bit words, the first holding bits 0-31."""
    words = [
        sum(b << j for j, b in enumerate(bits[i : i + 32])) for i in range(0, max(len(bits), 1), 32)
    ]
    return words[0] if len(bits) <= 32 else words


def round_view(session_id: str, event: dict[str, Any], position: int) -> dict[str, Any]:
    """One measured round of an interactive session, from its QecRoundsMeasured event:
    what the HTTP API returns and the data plane publishes."""
    syndrome = unpack_row(event["syndromes"], 0, event["num_stabilizers"])
    return {
        "session_id": session_id,
        "backend_id": event["backend_id"],
        "round_index": event["first_round"],
        "syndrome_bits": syndrome,
        "meas_data_packed": packed_word(syndrome),
        "detection_events": unpack_row(event["detection_events"], 0, event["num_detectors"]),
        "detection_fraction": event["detection_fraction"][0],
        "position": position,
    }


def measured_round(
    db: ViewReader, project_id: str, session_id: str, round_index: int, width: int
) -> list[int] | None:
    """A measured round's syndrome bits, or None if the read model has no such round."""
    rows = db.rows(
        "SELECT first_round, syndromes FROM qec_step WHERE project_id = ? AND session_id = ?"
        " AND kind = 'rounds' AND first_round <= ? AND first_round + count > ?",
        [project_id, session_id, round_index, round_index],
    )
    if not rows or not rows[0]["syndromes"]:
        return None
    return unpack_row(rows[0]["syndromes"], round_index - rows[0]["first_round"], width)


def rounds_step(
    db: ViewReader, project_id: str, session_id: str, first_round: int
) -> dict[str, Any] | None:
    """The recorded step of rounds that starts at `first_round`, as its event had it."""
    rows = db.rows(
        "SELECT syndromes, detection_events, detection_fraction_json FROM qec_step"
        " WHERE project_id = ? AND session_id = ? AND kind = 'rounds' AND first_round = ?",
        [project_id, session_id, first_round],
    )
    if not rows:
        return None
    r = rows[0]
    return {
        "syndromes": r["syndromes"],
        "detection_events": r["detection_events"],
        "detection_fraction": orjson.loads(r["detection_fraction_json"]),
    }


def trace(db: ViewReader, project_id: str, session_id: str) -> list[dict[str, Any]]:
    rows = db.rows(
        "SELECT * FROM qec_step WHERE project_id = ? AND session_id = ? ORDER BY position",
        [project_id, session_id],
    )
    out = []
    for r in rows:
        step: dict[str, Any] = {
            "kind": r["kind"],
            "timestamp": iso(r["occurred_at"]),
            "position": r["position"],
        }
        if r["kind"] == "rounds":
            step.update(first_round=r["first_round"], count=r["count"],
                        syndromes_packed=r["syndromes"],
                        detection_events_packed=r["detection_events"],
                        detection_fraction=orjson.loads(r["detection_fraction_json"]))  # fmt: skip
        elif r["kind"] == "correction":
            step.update(round_index=r["first_round"],
                        correction_bits=orjson.loads(r["correction_json"]))  # fmt: skip
        if r["noise_json"]:
            step["noise"] = orjson.loads(r["noise_json"])
        out.append(step)
    return out
