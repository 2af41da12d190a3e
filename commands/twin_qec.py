"""QEC session commands: create, measure rounds, correct, end.

The order rules are the QecSession aggregate's; the code geometry and the simulation are
a QecPort's (adapters/twin/qec_engine.py over twin/qec.py). A measured round's syndrome
is in its event, and the reply carries that event (`REPLY_WITH_EVENT`), so a decoder
gets its syndrome in the same round trip that recorded it.
"""

from __future__ import annotations

import secrets
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from commands.authorization import Caller
from commands.models import Ident
from commands.ports import QecPort
from commands.twin import _TwinCommand, current_files
from commands.unit_of_work import UnitOfWork
from domain.errors import InvalidInput, Unavailable
from domain.events import CommandContext
from domain.twin import TwinBackend, backend_key
from domain.twin_qec import AUTONOMOUS, QecSession, qec_key, require_session

# One step runs inside the command writer, which waits for it: each is kept to about
# 50 ms of simulation. Measured in stim's frame simulator: a qubit-round of one shot
# costs ~0.3-0.5 us, and many shots cost about 1/16 of that each (SIMD lanes).
MAX_ROUNDS_PER_STEP = 10_000
MAX_QUBIT_ROUNDS_PER_STEP = 100_000  # code qubits × rounds × max(1, shots / 16)
MAX_AUTONOMOUS_SHOTS = 10_000
# The built-in decoder matches the whole history at the end, in the command writer:
# a session's detectors (rounds × stabilizers) and their bits over all shots are bounded.
# At 250,000 detectors, ending takes 1.4-2.3 s (pymatching builds and searches the graph).
MAX_SESSION_DETECTORS = 250_000
MAX_SESSION_BITS = 50_000_000


class CreateQecSession(_TwinCommand):
    SUBJECT = "twin.qec_create_session"
    REPLY_WITH_EVENT: ClassVar[bool] = True  # the rounds limit and seed it was given
    session_id: Ident
    backend_id: Ident
    code_family: Literal["repetition", "surface"]
    code_distance: Annotated[int, Field(ge=1, le=31)]
    basis: Literal["Z", "X"] = "Z"
    rounds: Annotated[int, Field(ge=1, le=1_000_000)] | None = None  # None: the most allowed
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    mode: Literal["interactive", "autonomous"] = "interactive"
    shots: Annotated[int, Field(ge=1, le=MAX_AUTONOMOUS_SHOTS)] = 1


class MeasureQecRounds(_TwinCommand):
    SUBJECT = "twin.qec_measure"
    REPLY_WITH_EVENT: ClassVar[bool] = True
    session_id: Ident
    round_index: Annotated[int, Field(ge=0)]
    count: Annotated[int, Field(ge=1, le=MAX_ROUNDS_PER_STEP)] = 1


class SubmitQecCorrection(_TwinCommand):
    """A correction for the round just measured; with `measure_next`, the next round is
    measured in the same command (one commit per round for a decoder loop)."""

    SUBJECT = "twin.qec_correct"
    REPLY_WITH_EVENT: ClassVar[bool] = True
    session_id: Ident
    round_index: Annotated[int, Field(ge=0)]
    correction_bits: list[int] = Field(max_length=4096)
    measure_next: bool = False


class EndQecSession(_TwinCommand):
    SUBJECT = "twin.qec_end"
    REPLY_WITH_EVENT: ClassVar[bool] = True
    session_id: Ident


def _qec(uow: UnitOfWork) -> QecPort:
    if uow.qec is None:
        raise Unavailable("this command node runs no QEC sessions", code="twin_unavailable")
    return uow.qec


def _session(uow: UnitOfWork, ctx: CommandContext, session_id: str) -> QecSession:
    return require_session(uow.get(QecSession, qec_key(ctx.project_id, session_id)), session_id)


def _controller(uow: UnitOfWork, ctx: CommandContext, backend_id: str) -> TwinBackend | None:
    return uow.get(TwinBackend, backend_key(ctx.project_id, backend_id))


def handle_create(cmd: CreateQecSession, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    if cmd.mode == AUTONOMOUS:
        shots = cmd.shots
    elif cmd.shots != 1:
        raise InvalidInput("shots > 1 needs mode 'autonomous'", code="invalid_shots")
    else:
        shots = 1
    code = _qec(uow).code_for(
        current_files(uow, ctx.project_id), cmd.backend_id, cmd.code_family,
        cmd.code_distance, cmd.basis,
    )  # fmt: skip
    most = min(
        MAX_SESSION_DETECTORS // code.num_stabilizers,
        MAX_SESSION_BITS // (code.num_stabilizers * shots),
    )
    rounds = cmd.rounds if cmd.rounds is not None else min(100_000, most)
    if rounds > most:
        raise InvalidInput(
            f"rounds {rounds}: a {cmd.code_family} code of distance {cmd.code_distance}"
            f" with {shots} shot(s) may run at most {most} rounds (the built-in decoder"
            " matches the whole history at the end)",
            code="session_too_large",
        )
    session = QecSession.create(
        ctx,
        existing=uow.get(QecSession, qec_key(ctx.project_id, cmd.session_id)),
        session_id=cmd.session_id,
        backend_id=cmd.backend_id,
        code_family=cmd.code_family,
        code_distance=cmd.code_distance,
        basis=cmd.basis,
        rounds_limit=rounds,
        seed=cmd.seed if cmd.seed is not None else secrets.randbits(63),
        mode=cmd.mode,
        shots=shots,
        num_stabilizers=code.num_stabilizers,
        num_data_qubits=len(code.data),
    )
    return uow.stage(session)


def _measure(uow: UnitOfWork, ctx: CommandContext, session: QecSession, count: int) -> None:
    per_round = (session.num_stabilizers + session.num_data_qubits) * max(1, session.shots / 16)
    if count * per_round > MAX_QUBIT_ROUNDS_PER_STEP:
        most = max(1, int(MAX_QUBIT_ROUNDS_PER_STEP // per_round))
        raise InvalidInput(
            f"{count} rounds in one step; this session takes at most {most} a step"
            " (a step is kept to about 50 ms of simulation)",
            code="step_too_large",
        )
    files = current_files(uow, ctx.project_id)
    measured = _qec(uow).measure(
        session, files, _controller(uow, ctx, session.backend_id), ctx.received_at, count
    )
    session.record_rounds(ctx, count=count, **measured)


def handle_measure(cmd: MeasureQecRounds, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    session = _session(uow, ctx, cmd.session_id)
    session.check_measure(cmd.round_index, cmd.count)
    _measure(uow, ctx, session, cmd.count)
    return uow.stage(session)


def handle_correct(cmd: SubmitQecCorrection, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    session = _session(uow, ctx, cmd.session_id)
    bits = cmd.correction_bits
    if len(bits) == session.num_stabilizers and not any(bits):
        # The reference's example loop sends len(syndrome_bits) zeros: "no correction".
        bits = [0] * session.num_data_qubits
    session.check_correction(cmd.round_index, bits)
    if cmd.measure_next:
        session.check_measure(cmd.round_index + 1, 1)
    _qec(uow).correct(session, bits)
    session.correct(ctx, cmd.round_index, tuple(bits))
    if cmd.measure_next:
        _measure(uow, ctx, session, 1)
    return uow.stage(session)


def handle_end(cmd: EndQecSession, ctx: CommandContext, uow: UnitOfWork, _: Caller):
    session = _session(uow, ctx, cmd.session_id)
    session.check_end()
    files = current_files(uow, ctx.project_id)
    noise, result = _qec(uow).end(
        session, files, _controller(uow, ctx, session.backend_id), ctx.received_at
    )
    session.end(ctx, noise=noise, result=result)
    return uow.stage(session)


QEC_HANDLERS = {
    CreateQecSession: handle_create,
    MeasureQecRounds: handle_measure,
    SubmitQecCorrection: handle_correct,
    EndQecSession: handle_end,
}
