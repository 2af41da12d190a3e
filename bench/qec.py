"""qledger QEC-session benchmark (not part of the test suite).

Against a fresh `qledger serve` (temp data dir, embedded NATS, SQLite), for rotated
surface codes of distance 3, 5 and 7 on `square_100` (d = 7 needs 97 qubits), per-round
latency and rounds/s of one decoder loop:
* HTTP: GET the round's syndrome, POST its correction (two requests a round);
* NATS: one request on `qledger.twin.<backend>.correction` (correction + next round);
* bulk: GET /rounds with the most rounds one step takes (5,882 for d = 3, 2,040 for
  d = 5, 1,030 for d = 7: about 50 ms of simulation each).
Raw baselines from the same run:
* a raw NATS request-reply round trip to an echo responder on the same nats-server;
* stim's compiled detection-event sampler on the same circuit (the code under the
  backend's noise): one shot a call (what one session is) and 1,024 shots a call.

    cd /work/main && .venv/bin/python bench/qec.py [--rounds 300] [--distances 3 5 7]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ first on sys.path would make `import twin` find bench/twin.py.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.append(str(Path(__file__).parent.parent))

import argparse
import asyncio
import json
import tempfile
import time

import httpx
import nats

from bench.harness import pct, start
from commands.twin_qec import MAX_QUBIT_ROUNDS_PER_STEP, MAX_ROUNDS_PER_STEP
from config.twin_files import load_backends, read_dir
from twin.controller import ControllerState, effective_noise
from twin.qec import full_circuit
from twin.qec_code import build
from twin.qec_noise import code_noise

PASSWORD = "bench-qec-admin-1"
TWIN = "/api/v1/digital-twin"
QEC = TWIN + "/qec_session/v1"


def stim_rates(d: int, backend_id: str) -> tuple[float, float]:
    """Rounds/s of stim's compiled detection-event sampler on the same circuit a session
    runs (the code under the backend's noise, 1,000 rounds): one shot a call (what one
    session is) and 1,024 shots a call (stim's full SIMD width)."""
    backend = load_backends(read_dir())[backend_id]
    code = build("surface", d)
    noise = code_noise(code, effective_noise(backend, ControllerState(), time.time()))
    sampler = full_circuit(code, [(noise, 1000)], noise).compile_detector_sampler(seed=1)
    sampler.sample(1)
    out = []
    for shots in (1, 1024):
        best = float("inf")
        for _ in range(5):  # the best of five calls: the machine is shared
            t = time.perf_counter()
            sampler.sample(shots)
            best = min(best, time.perf_counter() - t)
        out.append(1000 * shots / best)
    return out[0], out[1]


async def nats_baseline(url: str, n: int) -> list[float]:
    nc = await nats.connect(url)

    async def echo(msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe("bench.echo", cb=echo)
    body = b"x" * 200
    for _ in range(50):
        await nc.request("bench.echo", body, timeout=5)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await nc.request("bench.echo", body, timeout=5)
        out.append(time.perf_counter() - t)
    await nc.close()
    return out


async def nats_loop(url: str, key: str, sid: str, backend: str, n_data: int, rounds: int):
    nc = await nats.connect(url)
    headers = {"X-API-Key": key}
    out = []
    for r in range(rounds):
        body = {"session_id": sid, "round_index": r, "correction_bits": [0] * n_data}
        t = time.perf_counter()
        msg = await nc.request(
            f"qledger.twin.{backend}.correction", json.dumps(body).encode(), 10, headers=headers
        )
        out.append(time.perf_counter() - t)
        reply = json.loads(msg.data)
        assert reply["status"] == "accepted", reply
    await nc.close()
    return out


def settle(c: httpx.Client, sid: str) -> None:
    """Each loop starts with the read side caught up (a status read waits for the store's
    head), so it does not pay for the projection of the loop before."""
    assert c.get(f"{QEC}/{sid}/status").status_code == 200


def create(c: httpx.Client, backend: str, d: int, rounds: int) -> dict:
    r = c.post(QEC + "/", json={"backend_id": backend, "code_family": "surface",
                                "code_distance": d, "rounds": rounds, "seed": 1})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--distances", type=int, nargs="+", default=[3, 5, 7])
    ap.add_argument(
        "--bulk", type=int, help="rounds a bulk request (default: the most a step takes)"
    )
    args = ap.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="qledger-bench-qec-"))
    proc, base, token = start(data_dir, PASSWORD)
    try:
        c = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        key = c.post("/api/api-keys", json={"name": "bench", "scopes": ["read", "twin:write"]})
        key.raise_for_status()
        api_key = key.json()["api_key"]
        nats_url = (data_dir / "nats.url").read_text().strip()
        raw_nats = asyncio.run(nats_baseline(nats_url, 2000))
        backend = "square_100"
        print(f"raw NATS request-reply (echo, same nats-server), p50 / p99 ms: {pct(raw_nats, 7)}")
        print(f"\n{'surface code, per round':36s} {'p50 / p99 ms':>17s} {'rounds/s':>10s}")
        for d in args.distances:
            one, many = stim_rates(d, backend)
            # HTTP: GET syndrome + POST correction per round
            s = create(c, backend, d, args.rounds + 1)
            sid, n_data = s["session_id"], s["num_data_qubits"]
            settle(c, sid)
            lat = []
            t0 = time.perf_counter()
            for r in range(args.rounds):
                t = time.perf_counter()
                got = c.get(f"{QEC}/{sid}/round/{r}/syndrome")
                assert got.status_code == 200, got.text
                c.post(f"{QEC}/{sid}/round/{r}/correction", json={"correction_bits": [0] * n_data})
                lat.append(time.perf_counter() - t)
            http_rate = args.rounds / (time.perf_counter() - t0)
            print(f"d={d} HTTP (GET syndrome + POST corr.)  {pct(lat, 7)} {http_rate:10.0f}")
            # NATS: correction with measure_next, one request a round
            s = create(c, backend, d, args.rounds + 1)
            sid = s["session_id"]
            assert c.get(f"{QEC}/{sid}/round/0/syndrome").status_code == 200
            settle(c, sid)
            t0 = time.perf_counter()
            lat = asyncio.run(nats_loop(nats_url, api_key, sid, backend, n_data, args.rounds))
            nats_rate = args.rounds / (time.perf_counter() - t0)
            print(f"d={d} NATS (correction -> next round) {pct(lat, 7)} {nats_rate:10.0f}")
            # bulk
            bulk = args.bulk or min(
                MAX_ROUNDS_PER_STEP, MAX_QUBIT_ROUNDS_PER_STEP // s["qubits_used"]
            )
            lat = []
            for _ in range(10):  # a fresh session each: a session's rounds are bounded
                sid = create(c, backend, d, bulk)["session_id"]
                t = time.perf_counter()
                r = c.get(f"{QEC}/{sid}/rounds", params={"from": 0, "count": bulk})
                assert r.status_code == 200, r.text
                lat.append(time.perf_counter() - t)
            bulk_rate = bulk * len(lat) / sum(lat)
            print(f"d={d} bulk, {bulk} rounds a request  {pct(lat, 7)} {bulk_rate:10.0f}"
                  "   (per request)")  # fmt: skip
            print(f"d={d} raw stim, same circuit, 1 shot a call       {one:10.0f}"
                  f"   bulk = {100 * bulk_rate / one:.0f} % of it")  # fmt: skip
            print(f"d={d} raw stim, same circuit, 1,024 shots a call  {many:10.0f}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
