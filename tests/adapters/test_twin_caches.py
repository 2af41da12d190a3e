"""The command side's twin caches against batches that do not commit (found in review):
a controller state folded for a version later committed with other content, and a QEC
session's live simulator advanced for a step another node got to first."""

from __future__ import annotations

from pathlib import Path

from adapters.eventstore import EventStore, store_location
from adapters.twin.catalog import TwinCatalog, controller_state
from adapters.twin.qec_engine import QecEngine
from commands.processor import process_batch
from commands.twin import ApplyControllerCommand, WriteTwinConfig
from commands.twin_fpga import TakeReadout
from commands.twin_qec import CreateQecSession, MeasureQecRounds, SubmitQecCorrection
from domain.twin import TwinBackend, backend_key
from domain.twin_qec import QecSession, qec_key
from tests.conftest import sub

CATALOG = TwinCatalog()


def test_a_retried_batch_leaves_no_stale_controller_state(tmp_path: Path):
    store = EventStore(store_location(None, tmp_path))

    def cryo(mk: float) -> ApplyControllerCommand:
        return ApplyControllerCommand(
            backend_id="line_5", command_type="set_cryo", payload={"temperature_mk": mk}
        )

    process_batch([sub(cryo(100), "K")], store, twin=CATALOG)
    process_batch([sub(cryo(15))], store, twin=CATALOG)
    # The repeat of K is decided again at first (then refused by its key): the batch is
    # retried, and the readout commits at the version the first attempt had folded.
    replies = process_batch([sub(cryo(100), "K"), sub(TakeReadout(backend_id="line_5"))],
                            store, twin=CATALOG)  # fmt: skip
    assert [r.status for r in replies] == ["accepted", "accepted"]
    # The first attempt had folded 100 mK as version 3; now version 3 is committed as 20.
    process_batch([sub(cryo(20))], store, twin=CATALOG)
    backend = store.load(TwinBackend, backend_key("default", "line_5"))
    assert backend.version == 3
    assert controller_state(backend).temperature_mk == 20


def test_a_live_session_behind_another_node_is_rebuilt(tmp_path: Path):
    url = f"sqlite://{tmp_path / 'events.sqlite'}"
    node_a, node_b = (EventStore(store_location(url, tmp_path)) for _ in range(2))
    engine_a, engine_b = QecEngine(CATALOG), QecEngine(CATALOG)

    def on(store, engine, command):
        return process_batch([sub(command)], store, twin=CATALOG, qec=engine)[0]

    create = CreateQecSession(session_id="s", backend_id="line_5", code_family="repetition",
                              code_distance=3, seed=7, rounds=20)  # fmt: skip
    assert on(node_a, engine_a, create).status == "accepted"
    assert (
        on(node_a, engine_a, MeasureQecRounds(session_id="s", round_index=0)).status == "accepted"
    )
    fix = SubmitQecCorrection(session_id="s", round_index=0, correction_bits=[1, 0, 0])
    assert on(node_b, engine_b, fix).status == "accepted"
    # Node A still holds the session before the correction: its first attempt conflicts.
    assert (
        on(node_a, engine_a, MeasureQecRounds(session_id="s", round_index=1)).status == "accepted"
    )
    session = node_a.load(QecSession, qec_key("default", "s"))
    live = engine_a.live[session.id].session
    replayed = QecEngine(CATALOG)._sync(session)
    assert live.rounds == replayed.rounds == 2
    assert (live.frame == replayed.frame).all() and live.frame.any()


def test_a_backend_without_controller_commands_gets_its_code_noise_once_a_second(
    tmp_path: Path, monkeypatch
):
    # Found by bench/qec.py: such a backend's controller state was a new object on
    # every command, so the noise cache (keyed by it) missed and each round spent ~4 ms
    # recomputing the code's noise.
    import adapters.twin.qec_engine as engine_module

    computed = []
    real = engine_module.code_noise
    monkeypatch.setattr(
        engine_module, "code_noise", lambda *a, **k: computed.append(1) or real(*a, **k)
    )
    store, engine = EventStore(store_location(None, tmp_path)), QecEngine(CATALOG)
    create = CreateQecSession(session_id="s", backend_id="square_64", code_family="surface",
                              code_distance=3, seed=7, rounds=50)  # fmt: skip
    assert process_batch([sub(create)], store, twin=CATALOG, qec=engine)[0].status == "accepted"
    for r in range(30):
        step = MeasureQecRounds(session_id="s", round_index=r)
        assert process_batch([sub(step)], store, twin=CATALOG, qec=engine)[0].status == "accepted"
    assert len(computed) <= 2  # once a second: the rounds may straddle one boundary


def test_a_retried_batch_rereads_what_it_found_absent(tmp_path: Path):
    # A batch that conflicts is retried after forgetting what it touched, including what
    # it looked up and did not find: here the project's twin config, which another
    # node wrote meanwhile (removing the backend this node is about to command).
    url = f"sqlite://{tmp_path / 'events.sqlite'}"
    node_a, node_b = (EventStore(store_location(url, tmp_path)) for _ in range(2))

    def cryo(mk: float) -> ApplyControllerCommand:
        return ApplyControllerCommand(
            backend_id="line_5", command_type="set_cryo", payload={"temperature_mk": mk}
        )

    # Node A: the config is absent (base files only), the backend at version 1.
    assert process_batch([sub(cryo(15))], node_a, twin=CATALOG)[0].status == "accepted"
    # Node B: the backend at version 2, then a config without line_5.
    assert process_batch([sub(cryo(20))], node_b, twin=CATALOG)[0].status == "accepted"
    backends = CATALOG.base_files()["backends.yaml"]
    head, rest = backends.split("  line_5:")
    without = head + "  heavy_hex_27:" + rest.split("  heavy_hex_27:")[1]
    write = WriteTwinConfig(path="backends.yaml", content=without)
    assert process_batch([sub(write)], node_b, twin=CATALOG)[0].status == "accepted"
    # Node A decides on what it holds (version 1, no config), conflicts, and on retry
    # reads both again: line_5 is gone.
    reply = process_batch([sub(cryo(30))], node_a, twin=CATALOG)[0]
    assert (reply.status, reply.code) == ("rejected", "unknown_backend")
    assert node_a.load(TwinBackend, backend_key("default", "line_5")).version == 2
