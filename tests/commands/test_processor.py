"""Command handling through the real SQLite store: replies, lineage, idempotency, batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.eventstore import EventStore
from commands.models import (
    CompleteExecution,
    InputParameter,
    OutputParameter,
    RecordTaskResult,
    RegisterChip,
    StartExecution,
    TaskResultIn,
)
from commands.processor import process_batch
from domain.parameters import series_key
from tests.conftest import sub

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def send(store: EventStore, *commands, key: str | None = None):
    return process_batch([sub(c, key) for c in commands], store)


def result(
    task_id: str, minute: int, qid: str = "0", inputs=None, outputs=None, status="completed"
):
    return RecordTaskResult(
        execution_id="e1",
        task=TaskResultIn(
            task_id=task_id, task_name="Calib", qid=qid, status=status,
            input_parameters=inputs or {},
            output_parameters=outputs or {"qubit_frequency": OutputParameter(value=5.0 + minute, unit="GHz")},
            start_at=T0 + timedelta(minutes=minute), end_at=T0 + timedelta(minutes=minute, seconds=30),
        ),
    )  # fmt: skip


def setup(store: EventStore) -> None:
    replies = send(
        store, RegisterChip(chip_id="c1", size=4), StartExecution(execution_id="e1", chip_id="c1")
    )
    assert [r.status for r in replies] == ["accepted", "accepted"]


def test_accepted_reply_names_the_events_and_the_last_position(sqlite_store):
    setup(sqlite_store)
    (reply,) = send(sqlite_store, result("t1", 1))
    assert reply.status == "accepted" and len(reply.event_ids) == 2  # task result + 1 version
    assert reply.position == sqlite_store.max_position()


def test_inputs_link_to_the_version_valid_when_the_task_started(sqlite_store):
    setup(sqlite_store)
    send(sqlite_store, result("t1", 1))
    send(sqlite_store, result("t2", 10))
    reading = {"qubit_frequency": InputParameter(value=5.0)}
    send(sqlite_store, result("t3", 5, inputs=reading, outputs={"t1": OutputParameter(value=40.0)}))
    (version,) = sqlite_store.aggregate_events(series_key("default", "c1", "0", "t1"))
    # t3 started at minute 5: the frequency then was t1's (t2's arrived at minute 10).
    assert version.used == ("qubit_frequency:0:e1:t1",)
    exact = {"qubit_frequency": InputParameter(entity_id="qubit_frequency:0:e1:t2")}
    send(sqlite_store, result("t4", 20, inputs=exact, outputs={"t1": OutputParameter(value=41.0)}))
    assert sqlite_store.aggregate_events(series_key("default", "c1", "0", "t1"))[1].used == (
        "qubit_frequency:0:e1:t2",
    )
    # An exact version must be of the named parameter, and valid when the task started.
    wrong_name = {"amplitude": InputParameter(entity_id="qubit_frequency:0:e1:t2")}
    (reply,) = send(sqlite_store, result("t5", 30, inputs=wrong_name))
    assert reply.code == "input_name_mismatch"
    (reply,) = send(sqlite_store, result("t6", 3, inputs=exact))  # t2's version: minute 10
    assert reply.code == "input_from_the_future"


def test_rejections_have_codes_and_append_nothing(sqlite_store):
    setup(sqlite_store)
    before = sqlite_store.max_position()
    bad_input = {"f": InputParameter(entity_id="f:0:e1:nope")}
    cases = {
        "chip_exists": RegisterChip(chip_id="c1", size=4),
        "chip_not_found": StartExecution(execution_id="e2", chip_id="nope"),
        "execution_not_found": RecordTaskResult(execution_id="nope", task=result("x", 1).task),
        "unknown_qid": result("t1", 1, qid="7"),
        "unknown_input_version": result("t1", 1, inputs=bad_input),
    }
    for code, command in cases.items():
        (reply,) = send(sqlite_store, command)
        assert (reply.status, reply.code) == ("rejected", code)
    send(sqlite_store, CompleteExecution(execution_id="e1"))
    (reply,) = send(sqlite_store, result("t9", 1))
    assert reply.code == "execution_finished"
    assert sqlite_store.max_position() == before + 1  # only the completion


def test_one_bad_command_in_a_batch_does_not_cost_the_others(sqlite_store):
    setup(sqlite_store)
    replies = send(
        sqlite_store, result("t1", 1), result("t1", 2), result("t2", 3, qid="9"), result("t3", 4)
    )
    assert [r.status for r in replies] == ["accepted", "rejected", "rejected", "accepted"]
    assert [r.code for r in replies if r.status == "rejected"] == ["duplicate_task", "unknown_qid"]
    versions = sqlite_store.aggregate_events(series_key("default", "c1", "0", "qubit_frequency"))
    assert [v.version for v in versions] == [1, 2]


def test_failed_tasks_record_no_parameter_versions(sqlite_store):
    setup(sqlite_store)
    (reply,) = send(sqlite_store, result("t1", 1, status="failed"))
    assert reply.status == "accepted" and len(reply.event_ids) == 1


def test_idempotency_key_returns_the_first_reply_and_appends_nothing(sqlite_store, tmp_path):
    setup(sqlite_store)
    (first,) = send(sqlite_store, result("t1", 1), key="k-1")
    after_first = sqlite_store.max_position()
    (again,) = send(sqlite_store, result("t1", 1), key="k-1")
    assert again == first and sqlite_store.max_position() == after_first

    # Also from a fresh process (no cache) and with the duplicate inside one batch.
    fresh = EventStore(sqlite_store.location)
    replies = process_batch(
        [sub(result("t1", 1), "k-1"), sub(result("t2", 2), "k-2"),
         sub(result("t2", 2), "k-2")],
        fresh,
    )  # fmt: skip
    assert replies[0] == first
    assert replies[1] == replies[2] and replies[1].status == "accepted"
    (other,) = send(fresh, result("t5", 5), key="k-1")
    assert other.code == "idempotency_key_reused"
    fresh.close()
