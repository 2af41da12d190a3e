"""The AsyncAPI document of the bus against a running `qledger serve`: it is served open,
it is the one the code generates, it holds together as an AsyncAPI 3.0 document (as far
as can be checked offline), and real traffic conforms to it: commands and their replies
(accepted and rejected), the events the relay publishes on JetStream, the commit signal
and the twin's data plane, each validated with jsonschema against the schemas it names."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import nats
import pytest
from nats.js import api

from adapters.asyncapi import build_asyncapi
from adapters.docs_gen import openapi_document
from commands.handlers import COMMANDS
from domain.catalog import EVENT_TYPES
from tests.e2e.serving import Serve, run_bounded, running

pytestmark = pytest.mark.e2e

BUDGET = 60.0  # every wait below is a share of this; server-side waits are shorter (5 s)
BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'
# What each kind of object may hold in AsyncAPI 3.0.0 (its JSON Schema definitions, which
# all say additionalProperties: false); x- extensions aside.
ALLOWED = {
    "server": {"host", "protocol", "protocolVersion", "pathname", "description", "title",
               "summary", "variables", "security", "tags", "externalDocs", "bindings"},
    "channel": {"address", "messages", "title", "summary", "description", "servers",
                "parameters", "tags", "externalDocs", "bindings"},
    "operation": {"action", "channel", "title", "summary", "description", "security", "tags",
                  "externalDocs", "bindings", "traits", "messages", "reply"},
    "reply": {"address", "channel", "messages"},
    "message": {"headers", "payload", "correlationId", "contentType", "name", "title",
                "summary", "description", "tags", "externalDocs", "bindings", "examples",
                "traits", "deprecated"},
    "parameter": {"enum", "default", "description", "examples", "location"},
}  # fmt: skip
COMPONENT_KEY = re.compile(r"^[\w.\-]+$")
# AsyncAPI's default schema format is draft 07: none of the keywords added after it.
LATER_DRAFTS = {"prefixItems", "$defs", "unevaluatedProperties", "unevaluatedItems",
                "dependentRequired", "dependentSchemas", "$anchor", "$dynamicRef",
                "minContains", "maxContains"}  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Serve]:
    yield from running(Path(tmp_path_factory.mktemp("asyncapi")))


@pytest.fixture(scope="module")
def document(served: Serve) -> dict[str, Any]:
    r = httpx.get(served.base + "/api/asyncapi.json", timeout=BUDGET / 4)  # no credential
    assert r.status_code == 200, r.text
    return r.json()


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"not a local reference: {ref}"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def problems(doc: dict[str, Any]) -> list[str]:
    """What makes `doc` no AsyncAPI 3.0 document, as far as the spec can be checked here."""
    found = []

    def keys(kind: str, where: str, obj: dict[str, Any]) -> None:
        extra = {k for k in obj if not k.startswith("x-")} - ALLOWED[kind]
        if extra:
            found.append(f"{where}: {kind} with unknown fields {sorted(extra)}")

    def subset(where: str, channel_ref: str, messages: list[dict[str, str]]) -> None:
        for m in messages:
            if not m["$ref"].startswith(channel_ref + "/messages/"):
                found.append(f"{where}: {m['$ref']} is not a message of {channel_ref}")

    if doc.get("asyncapi") != "3.0.0":
        found.append("asyncapi is not 3.0.0")
    if not all(isinstance(doc.get("info", {}).get(k), str) for k in ("title", "version")):
        found.append("info needs a title and a version")
    found += [f"a $ref that does not resolve: {r}" for r in refs(doc) if not _resolves(doc, r)]
    for name, server in doc.get("servers", {}).items():
        keys("server", f"servers/{name}", server)
        if not {"host", "protocol"} <= set(server):
            found.append(f"servers/{name} needs host and protocol")
    for name, channel in doc["channels"].items():
        keys("channel", f"channels/{name}", channel)
        address = channel.get("address")
        if address is not None and not isinstance(address, str):
            found.append(f"channels/{name}: address must be a string or null")
        named = set(re.findall(r"\{([^}]+)\}", address or ""))
        if named != set(channel.get("parameters", {})):
            found.append(f"channels/{name}: parameters {named} of the address not declared")
    for name, op in doc["operations"].items():
        keys("operation", f"operations/{name}", op)
        if op.get("action") not in ("send", "receive"):
            found.append(f"operations/{name}: action must be send or receive")
        channel_ref = op["channel"]["$ref"]
        if not channel_ref.startswith("#/channels/"):
            found.append(f"operations/{name}: its channel is not one of #/channels")
        subset(f"operations/{name}", channel_ref, op.get("messages", []))
        if "reply" in op:
            keys("reply", f"operations/{name}/reply", op["reply"])
            subset(f"operations/{name}/reply", op["reply"]["channel"]["$ref"],
                   op["reply"]["messages"])  # fmt: skip
    for section, objects in doc.get("components", {}).items():
        found += [
            f"components/{section}/{k}: bad key" for k in objects if not COMPONENT_KEY.match(k)
        ]
    for name, message in doc["components"]["messages"].items():
        keys("message", f"components/messages/{name}", message)
    for name, parameter in doc["components"]["parameters"].items():
        keys("parameter", f"components/parameters/{name}", parameter)
    later = LATER_DRAFTS & set(_keys(doc["components"]["schemas"]))
    found += [f"a keyword JSON Schema draft 07 does not have: {k}" for k in sorted(later)]
    for name, schema in doc["components"]["schemas"].items():
        try:
            jsonschema.Draft7Validator.check_schema(schema)
        except jsonschema.SchemaError as err:
            found.append(f"components/schemas/{name}: {err.message}")
    return found


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            if key not in ("properties", "patternProperties"):  # their keys are field names
                yield from _keys(value)
            else:
                for field in value.values():
                    yield from _keys(field)
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value)


def _resolves(doc: dict[str, Any], ref: str) -> bool:
    try:
        resolve(doc, ref)
    except AssertionError:
        return False
    return True


def test_the_served_document_is_the_generated_one_and_holds_together(served, document):
    assert document == json.loads(json.dumps(build_asyncapi()))
    assert problems(document) == []
    addresses = {c["address"] for c in document["channels"].values()}
    assert {f"qledger.cmd.{subject}" for subject in COMMANDS} <= addresses
    for event_type in EVENT_TYPES:
        context, name = event_type.split(".")
        assert f"qledger.evt.{{project}}.{context}.{name}" in addresses
    assert {"qledger.sys.committed", "qledger.twin.{backend}.syndrome",
            "qledger.twin.{backend}.correction", "qledger.twin.{backend}.readout"} <= addresses  # fmt: skip
    # the route tables of docs/http-api.md are built offline: from the same document
    served_openapi = httpx.get(served.base + "/openapi.json", timeout=BUDGET / 4).json()
    assert served_openapi == json.loads(json.dumps(openapi_document()))


def the_channel(doc: dict[str, Any], subject: str) -> dict[str, Any]:
    """The one channel whose address matches a subject (parameters match one token)."""

    def pattern(address: str) -> str:
        parts = re.split(r"\{[^}]+\}", address)
        return "[^.]+".join(re.escape(part) for part in parts)

    matches = [
        channel
        for channel in doc["channels"].values()
        if channel["address"] is not None and re.fullmatch(pattern(channel["address"]), subject)
    ]
    assert len(matches) == 1, f"{subject}: {len(matches)} channels"
    return matches[0]


def validate(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """Against a schema of the document, its references resolved within the document."""
    root = {"allOf": [schema], "components": doc["components"]}
    jsonschema.Draft7Validator(root).validate(instance)


def conforms(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> bool:
    try:
        validate(doc, schema, instance)
    except jsonschema.ValidationError:
        return False
    return True


def check_request(
    doc: dict[str, Any], subject: str, headers: dict, body: dict, reply: dict
) -> tuple[bool, str]:
    """Whether a request conforms to its channel's message (body and headers), and the
    one reply of the operation that takes it that its reply conforms to."""
    channel = the_channel(doc, subject)
    [message] = [resolve(doc, m["$ref"]) for m in channel["messages"].values()]
    sound = conforms(doc, message["payload"], body) and conforms(doc, message["headers"], headers)
    [op] = [
        op for op in doc["operations"].values() if resolve(doc, op["channel"]["$ref"]) is channel
    ]
    # each points at a message of the reply channel, itself a reference to a component
    replies = [resolve(doc, resolve(doc, m["$ref"])["$ref"]) for m in op["reply"]["messages"]]
    fits = [m["name"] for m in replies if conforms(doc, m["payload"], reply)]
    assert len(fits) == 1, f"{subject}: the reply {reply} fits {fits}"
    return sound, fits[0]


def check_published(doc: dict[str, Any], subject: str, headers: dict | None, data: Any) -> None:
    channel = the_channel(doc, subject)
    [message] = [resolve(doc, m["$ref"]) for m in channel["messages"].values()]
    validate(doc, message["payload"], data)
    if "headers" in message:
        validate(doc, message["headers"], headers or {})


def test_real_traffic_conforms(served: Serve, document: dict[str, Any]):
    auth = {"Authorization": f"Bearer {served.token}"}
    requests: list[tuple[str, dict, dict, dict]] = []

    async def traffic() -> tuple[list, list, list]:
        nc = await nats.connect(served.nats_url)
        committed = await nc.subscribe("qledger.sys.committed")
        plane = await nc.subscribe("qledger.twin.>")

        async def request(subject: str, body: dict, headers: dict) -> dict:
            msg = await nc.request(subject, json.dumps(body).encode(), timeout=BUDGET / 4,
                                   headers=headers)  # fmt: skip
            reply = json.loads(msg.data)
            requests.append((subject, headers, body, reply))
            return reply

        cmd = "qledger.cmd."
        chip = {"chip_id": "doc-chip", "size": 4}
        keyed = {**auth, "Idempotency-Key": "doc-chip", "X-Correlation-Id": "asyncapi-test"}
        await request(cmd + "chip.register", chip, keyed)
        await request(cmd + "calibration.start_execution",
                      {"execution_id": "doc-ex", "chip_id": "doc-chip", "name": "doc"},
                      {**auth, "X-Project-Id": "default"})  # fmt: skip
        await request(cmd + "twin.submit_job", {"job_id": "doc-job", "backend_id": "ibm_jakarta_like",
                      "shots": 16, "circuits": [BELL]}, auth)  # fmt: skip
        await request(cmd + "twin.qec_create_session", {"session_id": "doc-qec",
                      "backend_id": "ibm_jakarta_like", "code_family": "repetition",
                      "code_distance": 3, "seed": 1}, auth)  # fmt: skip
        await request(cmd + "twin.qec_measure", {"session_id": "doc-qec", "round_index": 0}, auth)
        await request("qledger.twin.ibm_jakarta_like.correction",
                      {"session_id": "doc-qec", "round_index": 0, "correction_bits": [0, 0, 0]},
                      auth)  # fmt: skip
        # refusals: no credential, a bad body, a rule of the domain, a stale round
        await request(cmd + "chip.register", chip, {"Idempotency-Key": "no-credential"})
        await request(cmd + "chip.register", {"chip_id": "doc-chip-2", "size": 0}, auth)
        await request(cmd + "chip.register", chip, auth)
        await request("qledger.twin.ibm_jakarta_like.correction",
                      {"session_id": "doc-qec", "round_index": 0, "correction_bits": [0, 0, 0]},
                      auth)  # fmt: skip
        last = max(r["position"] for *_, r in requests if r["status"] == "accepted")

        # The stream from the start (the first admin's events included) up to this test's
        # last write and the job's end, which the twin runner records on its own.
        events = []
        sub = await nc.jetstream().subscribe(
            "qledger.evt.>", ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL
        )
        deadline = asyncio.get_running_loop().time() + BUDGET / 2
        while not (
            events
            and events[-1][2]["position"] >= last
            and any(e[2]["type"] in ("twin.JobCompleted", "twin.JobFailed") for e in events)
        ):
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, f"events up to {last} and the job's end: {len(events)} seen"
            msg = await sub.next_msg(timeout=remaining)
            events.append((msg.subject, msg.headers, json.loads(msg.data)))
        signals = [await committed.next_msg(timeout=BUDGET / 4)]
        published = []
        while True:
            try:
                msg = await plane.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                break
            published.append((msg.subject, msg.headers, json.loads(msg.data)))
        await nc.close()
        return events, signals, published

    events, signals, published = run_bounded(traffic(), timeout=BUDGET)

    checked = [check_request(document, *request) for request in requests]
    codes = [r.get("code") for *_, r in requests]
    assert [reply for _, reply in checked] == (
        ["Accepted"] * 5 + ["CorrectionAccepted"] + ["Rejected"] * 4
    ), codes
    assert codes[6:] == ["unauthenticated", "invalid_command", "chip_exists", "round_out_of_order"]
    # What the document refuses the command side refuses too: no credential, size 0.
    assert [sound for sound, _ in checked] == [True] * 6 + [False, False, True, True]
    headers = the_channel(document, "qledger.cmd.chip.register")["messages"]["RegisterChip"]
    schema = resolve(document, headers["$ref"])["headers"]
    assert not conforms(document, schema, {**auth, "X-API-Key": "qlk_x_y"})  # both: refused

    for subject, msg_headers, envelope in events:
        check_published(document, subject, msg_headers, envelope)
        assert msg_headers["Nats-Msg-Id"] == str(envelope["position"])
    seen = {envelope["type"] for *_, envelope in events}
    assert {"identity.UserRegistered", "chip.ChipRegistered", "calibration.ExecutionStarted",
            "ledger.CommandAccepted", "twin.JobSubmitted", "twin.QecSessionCreated",
            "twin.QecRoundsMeasured", "twin.QecCorrectionApplied"} <= seen, seen  # fmt: skip
    correlated = [e for *_, e in events if e["correlation_id"] == "asyncapi-test"]
    assert {e["type"] for e in correlated} >= {"chip.ChipRegistered"}

    for message in signals:
        check_published(document, message.subject, message.headers, message.data.decode())
    kinds = [subject.rsplit(".", 1)[1] for subject, *_ in published]
    assert kinds.count("syndrome") == 2, kinds  # round 0 measured, round 1 with the correction
    for subject, msg_headers, data in published:
        if not subject.endswith(".correction"):  # our own requests, checked above
            check_published(document, subject, msg_headers, data)
