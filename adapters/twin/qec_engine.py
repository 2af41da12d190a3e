"""commands.ports.QecPort: QEC sessions' live simulations, in the command process.

A live session is a cache. It is valid while it has applied exactly the steps its
aggregate has recorded; otherwise (after a restart, or a batch that did not commit) it
is rebuilt by replaying the recorded steps from the seed, which gives the same bits.
"""

from __future__ import annotations

import base64
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from adapters.twin.catalog import TwinCatalog, controller_state
from domain.errors import InvalidInput
from domain.twin_qec import AUTONOMOUS, QecSession
from twin.controller import ControllerState, effective_noise
from twin.device import Backend
from twin.errors import TwinError
from twin.qec import Session, per_round
from twin.qec_code import Code, build, check
from twin.qec_noise import CodeNoise, code_noise

LIVE_SESSIONS = 1024
LIVE_BYTES = 1 << 30  # live sessions' histories; the least recently used go first


def pack(bits: np.ndarray) -> str:
    """Rows of bits -> base64 of each row packed little-endian (bit j of a row: byte
    j // 8, bit j % 8), rows one after another."""
    return base64.b64encode(np.packbits(bits.astype(bool), axis=-1, bitorder="little")).decode()


@dataclass
class _Live:
    session: Session
    applied: int  # steps of the aggregate replayed into `session`


class QecEngine:
    def __init__(self, catalog: TwinCatalog) -> None:
        self.catalog = catalog
        self.live: OrderedDict[uuid.UUID, _Live] = OrderedDict()
        self._recent: dict[tuple, tuple[Backend, ControllerState, CodeNoise]] = {}
        # id(recorded dict) -> (the dict, kept alive so its id is not reused; parsed)
        self._noise: dict[int, tuple[dict, CodeNoise]] = {}

    def code_for(self, files, backend_id, family, distance, basis) -> Code:
        backend = self.catalog.backend(files, backend_id)
        try:
            check(family, distance, basis, backend.device.num_qubits)
        except TwinError as err:
            raise InvalidInput(err.message, code=err.code) from None
        return build(family, distance, basis)

    # -- noise --------------------------------------------------------------------------
    def _code_noise(self, session: QecSession, files, controller, at: datetime) -> CodeNoise:
        """The code's noise now. Drift moves the error rates by at most 2π·amplitude/period
        per second (~1e-4 for the shipped configs), below the 4 digits kept: the noise is
        recomputed once a second, or when the config or the controller state changes."""
        backend = self.catalog.backend(files, session.backend_id)
        if backend.device.num_qubits < self._code(session).num_qubits:
            raise InvalidInput(
                code="code_too_large",
                message=f"{session.backend_id} now has {backend.device.num_qubits} qubits; this"
                f" session's code needs {self._code(session).num_qubits}",
            )
        # Keyed by the objects themselves (kept alive in the entry, so an id is never
        # reused): the state object is new whenever the controller's fold changes.
        state = controller_state(controller)
        c = session.created
        key = (id(backend), id(state), c.code_family, c.code_distance, c.basis,
               int(at.timestamp()))  # fmt: skip
        hit = self._recent.get(key)
        if hit is None or hit[0] is not backend or hit[1] is not state:
            eff = effective_noise(backend, state, at.timestamp())
            if len(self._recent) > 256:
                self._recent.clear()
            hit = self._recent[key] = (backend, state, code_noise(self._code(session), eff))
        return hit[2]

    def _parsed(self, noise: dict[str, Any]) -> CodeNoise:
        hit = self._noise.get(id(noise))
        if hit is None:
            if len(self._noise) > 4096:
                self._noise.clear()
            hit = self._noise[id(noise)] = (noise, CodeNoise.from_dict(noise))
        return hit[1]

    # -- live sessions --------------------------------------------------------------------
    @staticmethod
    def _code(session: QecSession) -> Code:
        c = session.created
        return build(c.code_family, c.code_distance, c.basis)

    def _sync(self, session: QecSession) -> Session:
        live = self.live.get(session.id)
        if live is None or live.applied != len(session.steps):
            sim = Session(self._code(session), seed=session.seed, batch=session.shots)
            for step in session.steps:
                if step.correction is not None:
                    sim.correct(np.array(step.correction))
                else:
                    assert step.noise is not None
                    sim.measure(self._parsed(step.noise), step.count)
            live = self.live[session.id] = _Live(sim, len(session.steps))
            if len(self.live) > LIVE_SESSIONS:
                self.live.popitem(last=False)
        self.live.move_to_end(session.id)
        return live.session

    def forget(self, aggregate_ids) -> None:
        """A batch did not commit: its sessions' live simulations may be ahead."""
        for aggregate_id in aggregate_ids:
            self.live.pop(aggregate_id, None)

    def _advanced(self, session: QecSession) -> None:
        self.live[session.id].applied += 1
        total = sum(live.session.nbytes for live in self.live.values())
        while total > LIVE_BYTES and len(self.live) > 1:
            _, evicted = self.live.popitem(last=False)  # rebuilt from its events if needed
            total -= evicted.session.nbytes

    def measure(self, session, files, controller, at, count) -> dict[str, Any]:
        sim = self._sync(session)
        noise = self._code_noise(session, files, controller, at)
        as_dict = noise.to_dict()
        if as_dict == session.last_noise:
            noise = self._parsed(session.last_noise)  # the same object: no recompiles
        syndromes, detections = sim.measure(noise, count)
        self._advanced(session)
        fraction = tuple(
            np.round(np.concatenate([c.mean(axis=(1, 2)) for c in detections]), 6).tolist()
        )
        num_detectors = sum(c.shape[0] * c.shape[1] for c in detections)
        # The bits recorded are shot 0's (an autonomous session's other shots are kept
        # only as the fraction of detectors that fired).
        flat = np.concatenate([c[:, :, 0].ravel() for c in detections])
        return dict(
            noise=as_dict,
            num_detectors=num_detectors,
            syndromes=pack(syndromes[:, :, 0]),
            detection_events=pack(flat),
            detection_fraction=fraction,
        )

    def correct(self, session, bits) -> None:
        self._sync(session).correct(np.array(bits))
        self._advanced(session)

    def end(self, session, files, controller, at) -> tuple[dict[str, Any], dict[str, Any]]:
        sim = self._sync(session)
        self.live.pop(session.id, None)  # ending changes it, whatever happens next
        noise = self._code_noise(session, files, controller, at)
        outcome = sim.end(noise)
        shots = session.shots
        rate = float(outcome.builtin_errors.mean())
        builtin: dict[str, Any] = {
            "decoder": "pymatching, on the whole detection history",
            "logical_error_rate": rate,
            "logical_error_rate_stderr": float(np.sqrt(rate * (1 - rate) / shots)),
            "logical_error_per_round": per_round(rate, outcome.rounds),
        }
        result: dict[str, Any] = {"shots": shots, "builtin_decoder": builtin}
        if session.mode != AUTONOMOUS:
            logical = int(outcome.logical_flips[0])
            builtin["logical_error"] = bool(outcome.builtin_errors[0])
            result.update(
                logical_outcome=logical,  # the prepared logical state reads 0
                logical_error=bool(logical),  # as measured, under the corrections received
                data_outcomes=[int(b) for b in outcome.data[:, 0]],
            )
        return noise.to_dict(), result
