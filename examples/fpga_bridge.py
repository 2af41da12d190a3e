"""An FPGA bridge for qledger's QEC sessions: it subscribes to a backend's syndromes on
NATS, decodes each round with pymatching and answers a correction on NATS.

    python examples/fpga_bridge.py --url http://127.0.0.1:8000 --nats nats://127.0.0.1:PORT \
        --api-key KEY --backend square_64 --start surface:3 --rounds 50

The NATS URL is in `<data dir>/nats.url` (the embedded server of `qledger serve`). With
`--start`, the bridge also creates a session, asks for its round 0 over HTTP, runs
`--rounds` rounds over NATS and ends the session, printing the logical outcome. Without
it, it serves every session of the backend until interrupted.

The decoder here is the simplest one: each round's syndrome alone, matched on the
code's check matrix (from the session's layout). It corrects data errors at once but
cannot tell a measurement error from a data error, so it does worse than a decoder that
matches over time; the session's `end` reports both its outcome and what space-time
matching (the built-in decoder) concludes on the same syndromes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx
import nats
import numpy as np
import pymatching


class Bridge:
    def __init__(self, http: httpx.Client, nc, headers: dict[str, str], backend: str) -> None:
        self.http, self.nc, self.headers, self.backend = http, nc, headers, backend
        self.decoders: dict[str, tuple[pymatching.Matching, np.ndarray, int]] = {}
        self.rounds_done: dict[str, int] = {}
        self.finished: dict[str, asyncio.Event] = {}
        self.latencies: list[float] = []

    def decoder(self, session_id: str) -> tuple[pymatching.Matching, np.ndarray, int]:
        """Matching on the stabilizers of the code's basis (they see the flips it fixes)."""
        if session_id not in self.decoders:
            status = self.http.get(f"/qec_session/v1/{session_id}/status").json()
            layout, basis = status["layout"], status["basis"]
            rows = [s for s in layout["stabilizers"] if s["type"] == basis]
            checks = np.zeros((len(rows), len(layout["data_qubits"])), dtype=np.uint8)
            for i, s in enumerate(rows):
                checks[i, s["data"]] = 1
            index = np.array([s["index"] for s in rows])
            self.decoders[session_id] = (pymatching.Matching(checks), index, status["rounds_limit"])
        return self.decoders[session_id]

    async def on_syndrome(self, msg) -> None:
        round_ = json.loads(msg.data)
        session_id = round_["session_id"]
        matching, index, limit = await asyncio.to_thread(self.decoder, session_id)
        syndrome = np.array(round_["syndrome_bits"], dtype=np.uint8)[index]
        correction = matching.decode(syndrome).astype(int).tolist()
        r = round_["round_index"]
        body = {
            "session_id": session_id,
            "round_index": r,
            "correction_bits": correction,
            "measure_next": r + 1 < limit,
        }
        start = time.perf_counter()
        reply = await self.nc.request(
            f"qledger.twin.{self.backend}.correction",
            json.dumps(body).encode(),
            timeout=10,
            headers=self.headers,
        )
        self.latencies.append(time.perf_counter() - start)
        answer = json.loads(reply.data)
        if answer["status"] != "accepted":
            print(f"round {r}: correction refused: {answer}")
        self.rounds_done[session_id] = r + 1
        if not body["measure_next"] and session_id in self.finished:
            self.finished[session_id].set()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--backend", default="square_64")
    ap.add_argument("--start", help="family:distance, e.g. surface:3 or repetition:5")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--seed", type=int)
    args = ap.parse_args()

    headers = {"X-API-Key": args.api_key}
    http = httpx.Client(base_url=args.url + "/api/v1/digital-twin", headers=headers, timeout=30)
    nc = await nats.connect(args.nats)
    bridge = Bridge(http, nc, headers, args.backend)
    await nc.subscribe(f"qledger.twin.{args.backend}.syndrome", cb=bridge.on_syndrome)
    if not args.start:
        print(f"serving qledger.twin.{args.backend}.syndrome; Ctrl-C to stop")
        await asyncio.Event().wait()
    family, distance = args.start.split(":")
    created = await asyncio.to_thread(http.post, "/qec_session/v1/", json={
        "backend_id": args.backend, "code_family": family, "code_distance": int(distance),
        "rounds": args.rounds, "seed": args.seed,
    })  # fmt: skip
    created.raise_for_status()
    session_id = created.json()["session_id"]
    print(f"session {session_id}: {family} d={distance}, {args.rounds} rounds")
    done = bridge.finished[session_id] = asyncio.Event()
    # Round 0 over HTTP; the twin publishes it, and from there the bridge runs the loop.
    first = await asyncio.to_thread(http.get, f"/qec_session/v1/{session_id}/round/0/syndrome")
    first.raise_for_status()
    await asyncio.wait_for(done.wait(), timeout=120)
    result = (await asyncio.to_thread(http.post, f"/qec_session/v1/{session_id}/end")).json()
    lat = sorted(bridge.latencies)
    print(f"rounds: {result['total_rounds']}")
    print(f"corrections received: {result['stats']['corrections_received']}")
    print(f"logical outcome: {result['logical_outcome']} (error: {result['logical_error']})")
    print(f"built-in decoder logical error: {result['builtin_decoder']['logical_error']}")
    print(
        f"correction -> next syndrome over NATS, p50 {1000 * lat[len(lat) // 2]:.2f} ms,"
        f" p99 {1000 * lat[int(0.99 * (len(lat) - 1))]:.2f} ms"
    )
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
