"""A QEC session's write model: the rules about its order (rounds one after another, a
correction for the round just measured, nothing after the end) and the record of every
step. The simulation lives in twin/qec.py; replaying these events' inputs (seed, noise
per step, corrections) reproduces it bit for bit, so a session survives a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.aggregate import Aggregate
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import CommandContext, DomainEvent, register, stable_id

INTERACTIVE, AUTONOMOUS = "interactive", "autonomous"


@register
@dataclass(frozen=True, kw_only=True)
class QecSessionCreated(DomainEvent):
    TYPE = "twin.QecSessionCreated"
    session_id: str
    backend_id: str
    code_family: str
    code_distance: int
    basis: str
    rounds_limit: int
    seed: int
    mode: str  # interactive: a decoder drives it; autonomous: the built-in decoder
    shots: int  # shots run in lockstep (1 when interactive)
    num_stabilizers: int
    num_data_qubits: int


@register
@dataclass(frozen=True, kw_only=True)
class QecRoundsMeasured(DomainEvent):
    """Rounds first_round .. first_round + count - 1, measured under `noise` (the code's
    stim channels; None: the same as the step before)."""

    TYPE = "twin.QecRoundsMeasured"
    session_id: str
    backend_id: str
    first_round: int
    count: int
    noise: dict[str, Any] | None
    num_stabilizers: int  # syndrome bits per round
    num_detectors: int  # detection-event bits of the whole step (round 0 has fewer)
    # Base64 of the bits packed little-endian (bit j of a row: byte j // 8, bit j % 8);
    # syndromes one row per round, detection events one row for the step, in stim's
    # detector order. Shot 0's, for an autonomous session of many shots.
    syndromes: str
    detection_events: str
    # Fraction of detectors that fired, per round, over all shots.
    detection_fraction: tuple[float, ...]


@register
@dataclass(frozen=True, kw_only=True)
class QecCorrectionApplied(DomainEvent):
    TYPE = "twin.QecCorrectionApplied"
    session_id: str
    backend_id: str
    round_index: int  # applied after this round's syndrome
    correction_bits: tuple[int, ...]  # one per data qubit


@register
@dataclass(frozen=True, kw_only=True)
class QecSessionEnded(DomainEvent):
    TYPE = "twin.QecSessionEnded"
    session_id: str
    backend_id: str
    total_rounds: int
    corrections_received: int
    noise: dict[str, Any] | None  # of the final data measurement, as in QecRoundsMeasured
    result: dict[str, Any]  # logical outcome, built-in decoder's verdict, rates


def qec_key(project_id: str, session_id: str):
    return stable_id("twin-qec-session", project_id, session_id)


@dataclass(frozen=True)
class Step:
    """One input to the simulation, in order: measure `count` rounds, or correct."""

    count: int = 0
    noise: dict[str, Any] | None = None
    correction: tuple[int, ...] | None = None


class QecSession(Aggregate):
    session_id: str
    backend_id: str
    mode: str
    seed: int
    shots: int
    rounds_limit: int
    num_data_qubits: int
    num_stabilizers: int
    created: QecSessionCreated

    def __init__(self, aggregate_id) -> None:
        super().__init__(aggregate_id)
        self.rounds = 0
        self.ended = False
        self.corrected_round = -1
        self.corrections = 0
        self.steps: list[Step] = []
        self.last_noise: dict[str, Any] | None = None

    @classmethod
    def create(cls, ctx: CommandContext, *, existing: QecSession | None, **fields: Any):
        if existing is not None:
            raise Conflict(f"QEC session '{fields['session_id']}' already exists",
                           code="session_exists")  # fmt: skip
        session = cls(qec_key(ctx.project_id, fields["session_id"]))
        session._trigger(QecSessionCreated, ctx, **fields)
        return session

    def check_measure(self, round_index: int, count: int) -> None:
        self._require_open()
        if round_index != self.rounds:
            raise Conflict(
                f"round {round_index} is out of order: the next round is {self.rounds}",
                code="round_out_of_order",
            )
        if self.rounds + count > self.rounds_limit:
            raise Conflict(
                f"the session's rounds limit is {self.rounds_limit}; {self.rounds} measured",
                code="rounds_limit_reached",
            )

    def record_rounds(self, ctx: CommandContext, *, count: int, noise: dict, **data: Any) -> None:
        self._trigger(
            QecRoundsMeasured, ctx, session_id=self.session_id, backend_id=self.backend_id,
            first_round=self.rounds, count=count, num_stabilizers=self.num_stabilizers,
            noise=None if noise == self.last_noise else noise, **data,
        )  # fmt: skip

    def check_correction(self, round_index: int, bits: list[int]) -> None:
        self._require_open()
        if self.mode == AUTONOMOUS:
            raise Conflict("an autonomous session takes no corrections: its built-in decoder"
                           " closes the loop", code="session_autonomous")  # fmt: skip
        if round_index != self.rounds - 1:
            expected = "no round has been measured yet" if self.rounds == 0 else (
                f"the round just measured is {self.rounds - 1}")  # fmt: skip
            raise Conflict(f"a correction for round {round_index}: {expected}",
                           code="round_out_of_order")  # fmt: skip
        if self.corrected_round == round_index:
            raise Conflict(f"round {round_index} already has a correction",
                           code="correction_exists")  # fmt: skip
        if len(bits) != self.num_data_qubits or any(b not in (0, 1) for b in bits):
            raise InvalidInput(
                f"correction_bits must be {self.num_data_qubits} bits, one per data qubit"
                f" (got {len(bits)})",
                code="invalid_correction",
            )

    def correct(self, ctx: CommandContext, round_index: int, bits: tuple[int, ...]) -> None:
        self._trigger(
            QecCorrectionApplied, ctx, session_id=self.session_id, backend_id=self.backend_id,
            round_index=round_index, correction_bits=bits,
        )  # fmt: skip

    def check_end(self) -> None:
        self._require_open()
        if self.rounds == 0:
            raise Conflict("a session ends after at least one round", code="no_rounds")

    def end(self, ctx: CommandContext, *, noise: dict, result: dict[str, Any]) -> None:
        self._trigger(
            QecSessionEnded, ctx, session_id=self.session_id, backend_id=self.backend_id,
            total_rounds=self.rounds, corrections_received=self.corrections,
            noise=None if noise == self.last_noise else noise, result=result,
        )  # fmt: skip

    def _require_open(self) -> None:
        if self.ended:
            raise Conflict(f"QEC session '{self.session_id}' has ended", code="session_ended")

    def _on_QecSessionCreated(self, e: QecSessionCreated) -> None:
        self.created = e
        self.session_id, self.backend_id, self.mode = e.session_id, e.backend_id, e.mode
        self.seed, self.shots, self.rounds_limit = e.seed, e.shots, e.rounds_limit
        self.num_data_qubits, self.num_stabilizers = e.num_data_qubits, e.num_stabilizers

    def _on_QecRoundsMeasured(self, e: QecRoundsMeasured) -> None:
        if e.noise is not None:
            self.last_noise = e.noise
        self.steps.append(Step(count=e.count, noise=self.last_noise))
        self.rounds += e.count

    def _on_QecCorrectionApplied(self, e: QecCorrectionApplied) -> None:
        self.steps.append(Step(correction=e.correction_bits))
        self.corrected_round = e.round_index
        self.corrections += 1

    def _on_QecSessionEnded(self, e: QecSessionEnded) -> None:
        self.ended = True


def require_session(session: QecSession | None, session_id: str) -> QecSession:
    if session is None:
        raise NotFound(f"QEC session '{session_id}' does not exist", code="session_not_found")
    return session
