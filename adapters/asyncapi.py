"""The AsyncAPI 3.0 document of qledger's bus: every NATS subject, built from the code.

Commands are enumerated from the command registry (`commands.handlers.COMMANDS`, what
adapters/commandbus.py accepts), events from the event registry (`EVENT_TYPES`), so a
new command or event type is in the document without anyone editing it. Every schema
that has a pydantic model (or a dataclass pydantic can read) is generated from it, in
one pass, with the shared definitions in `components/schemas`. Schema is written by
hand only where the code has no model (each place says why).

Served at `GET /api/asyncapi.json` (adapters/http/asyncapi.py); `qledger docs` writes
it to docs/asyncapi.yaml (adapters/docs_gen.py).

Operations are qledger's own, as AsyncAPI 3 describes an application: `receive` is what
qledger takes (a client sends it), `send` is what qledger publishes (a client subscribes).
The schemas are JSON Schema draft 07 (AsyncAPI's default schema format): pydantic emits
no keyword from later drafts for these models; tests/e2e/test_asyncapi.py checks them
with a draft 07 validator against real messages.
"""

from __future__ import annotations

import copy
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from adapters.commandbus import CMD_PREFIX, COMMITTED_SUBJECT, MAX_COMMAND_BYTES, PROJECT_RE
from adapters.relay import EVENT_SUBJECTS, STREAM, event_subject
from adapters.twin.qec_bus import SUBJECT as DATA_PLANE_SUBJECT
from commands.handlers import COMMANDS
from commands.models import Accepted, Command, Rejected
from commands.twin_qec import SubmitQecCorrection
from domain.catalog import EVENT_TYPES
from domain.events import DomainEvent

SCHEMAS = "#/components/schemas/"
MESSAGES = "#/components/messages/"
REPLY = "reply"  # the channel every request's reply goes to (the requester's inbox)


def _ref(pointer: str) -> dict[str, str]:
    return {"$ref": pointer}


def _first_line(doc: str | None) -> str | None:
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else None


# -- schemas generated from the models ----------------------------------------------------


class _Published(GenerateJsonSchema):
    """What qledger publishes carries every field, defaults included (replies are
    `model_dump_json()`, payloads `DomainEvent.payload()`), so in serialization mode a
    field with a default is required too: a reply without `status` is not a reply."""

    def field_is_required(self, field: Any, total: bool) -> bool:
        if (
            self.mode == "serialization"
            and field["type"] != "typed-dict-field"  # a TypedDict may leave keys out
            and field.get("serialization_exclude_if") is None
        ):
            return True
        return super().field_is_required(field, total)


def _model_schemas() -> tuple[dict[tuple[str, str], str], dict[str, Any]]:
    """One pydantic pass over every command, reply and event: each gets a definition in
    components/schemas (its class name; pydantic renames on a clash), and the models
    they share (TaskResultIn, InputParameter, ...) are defined once.

    Commands in validation mode (what a client may send), replies and events in
    serialization mode (what qledger publishes)."""
    inputs: list[tuple[tuple[str, str], Any, TypeAdapter[Any]]] = []
    for subject, model in sorted(COMMANDS.items()):
        inputs.append((("command", subject), "validation", TypeAdapter(model)))
    inputs.append((("reply", "Accepted"), "serialization", TypeAdapter(Accepted)))
    inputs.append((("reply", "Rejected"), "serialization", TypeAdapter(Rejected)))
    for event_type, cls in sorted(EVENT_TYPES.items()):
        inputs.append((("event", event_type), "serialization", TypeAdapter(cls)))
    refs, top = TypeAdapter.json_schemas(
        inputs, ref_template=SCHEMAS + "{model}", schema_generator=_Published
    )
    names = {}
    for (key, _mode), ref in refs.items():
        assert "$ref" in ref, f"{key}: pydantic gave no definition to refer to"
        names[key] = ref["$ref"].removeprefix(SCHEMAS)
    return names, top.get("$defs", {})


def _event_payload(schema: dict[str, Any], cls: type[DomainEvent]) -> None:
    """An event dataclass's schema becomes the schema of its `payload`: the envelope
    fields travel beside it (DomainEvent.payload leaves them out), and the payload holds
    exactly the other fields, so anything more is a drift worth failing on."""
    envelope = DomainEvent.ENVELOPE_FIELDS
    schema["properties"] = {k: v for k, v in schema["properties"].items() if k not in envelope}
    schema["required"] = [f for f in schema.get("required", []) if f not in envelope]
    schema["additionalProperties"] = False
    doc = schema.get("description", "")
    if doc.startswith(f"{cls.__name__}("):  # the signature dataclasses puts in __doc__
        doc = ""
    head = f"The payload of `{cls.TYPE}` (schema version {cls.VERSION})."
    schema["description"] = f"{head} {doc}".strip()


def _correction_request(command: dict[str, Any]) -> dict[str, Any]:
    """The data plane's correction is the `twin.qec_correct` command whose `measure_next`
    defaults to true (adapters/twin/qec_bus.py sets it before parsing)."""
    schema = copy.deepcopy(command)
    schema["title"] = "CorrectionRequest"
    schema["properties"]["measure_next"]["default"] = True
    return schema


# -- schemas written by hand: the code has no model for these ------------------------------


def _text(description: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", **more, "description": description}


def _command_headers() -> dict[str, Any]:
    """NATS headers are read one by one in commandbus.parse_command and credentials.py;
    there is no model of them. The patterns are the ones those functions apply."""
    credential = "Exactly one credential: `Authorization` or `X-API-Key` (both is refused)."
    return {
        "type": "object",
        "description": f"{credential} Names are matched without regard to case.",
        "properties": {
            "Authorization": _text("`Bearer <access token>`", pattern="^Bearer "),
            "X-API-Key": _text("a project API key (POST /api/api-keys)", pattern="^qlk_"),
            "Idempotency-Key": _text(
                "the same command again with the same key (and sender, and project) returns"
                " the first reply and appends nothing, for as long as the store lives",
                minLength=1,
                maxLength=200,
            ),
            "X-Project-Id": _text(
                "the command's project; default: the caller's default project",
                pattern=PROJECT_RE.pattern,
            ),
            "X-Correlation-Id": _text(
                "becomes the `correlation_id` of the events; default: the command's id"
            ),
        },
        "oneOf": [{"required": ["Authorization"]}, {"required": ["X-API-Key"]}],
    }


def _event_headers() -> dict[str, Any]:
    """Set by the relay (adapters/relay.py, Relay._publish) as literals."""
    return {
        "type": "object",
        "required": ["Nats-Msg-Id"],
        "properties": {
            "Nats-Msg-Id": _text(
                "the store position: JetStream drops a duplicate", pattern="^[0-9]+$"
            ),
            "Nats-Expected-Stream": _text("the stream", const=STREAM),
            "Nats-Expected-Last-Msg-Id": _text(
                "the previous event's position: the stream refuses an event whose"
                " predecessor it does not hold",
                pattern="^[0-9]+$",
            ),
        },
    }


def _event_envelope() -> dict[str, Any]:
    """The envelope is a dict that adapters/eventstore.py (EnvelopeMapper) stores and the
    relay publishes with `position` spliced in: there is no model of it. The e2e test
    validates real events against this, so a new envelope field fails it."""
    uuid, when = {"type": "string", "format": "uuid"}, {"type": "string", "format": "date-time"}
    count = {"type": "integer", "minimum": 1}
    fields = {
        "position": {**count, "description": "the store position (also `Nats-Msg-Id`)"},
        "project_id": _text("`_identity` for account and admin-roster events"),
        "event_id": uuid,
        "type": _text("the stable wire name, `<context>.<EventName>`"),
        "schema_version": {
            **count,
            "description": "the version `payload` was stored in; the payload schemas here are"
            " each type's current version (an older one is upcast when read from the store)",
        },
        "aggregate_id": uuid,
        "aggregate_version": count,
        "actor": _text("the username, or `apikey:<key_id>`"),
        "correlation_id": {"type": "string"},
        "causation_id": _text("the id of the command that caused it"),
        "occurred_at": {**when, "description": "when it happened in the lab"},
        "recorded_at": {**when, "description": "when the command writer stored it"},
        "payload": {"type": "object"},
    }
    return {
        "type": "object",
        "description": "One stored event as the relay publishes it (docs/architecture.md).",
        "required": list(fields),
        "properties": fields,
        "additionalProperties": False,
    }


def _data_plane() -> dict[str, dict[str, Any]]:
    """The data plane publishes the views that projections/twin_qec.py (round_view) and
    projections/twin.py (readout_view) build as dicts for HTTP and the bus alike: no
    model to generate from, so their schemas are kept here (carried over from the
    hand-written document this replaces) and the e2e tests validate real messages."""
    bits = {"type": "array", "items": {"type": "integer", "enum": [0, 1]}}
    position = {"type": "integer", "description": "the store position of the step"}
    string, maybe = {"type": "string"}, lambda kind: {"type": [kind, "null"]}
    packed = {
        "description": "bit j = outcome j (LSB first); more than 32 outcomes: a list of"
        " 32-bit words, the first holding bits 0-31",
        "oneOf": [
            {"type": "integer", "minimum": 0},
            {"type": "array", "items": {"type": "integer", "minimum": 0}},
        ],
    }
    round_fields = {
        "session_id": string,
        "backend_id": string,
        "round_index": {"type": "integer", "minimum": 0},
        "syndrome_bits": {**bits, "description": "stabilizer outcomes of the round (flips"
                          " from the noiseless reference), in the layout's stabilizer order"},
        "meas_data_packed": packed,
        "detection_events": {**bits, "description": "the round's detectors in stim's order"
                             " (round 0 has only the code basis's stabilizers)"},
        "detection_fraction": {"type": "number", "minimum": 0, "maximum": 1},
        "position": position,
    }  # fmt: skip
    readout_fields = {
        "project_id": string,
        "backend_id": string,
        "schedule_id": maybe("string"),
        "round_index": maybe("integer"),
        "n_qubits": {"type": "integer"},
        "outcomes": bits,
        "meas_data_packed": packed,
        "position": position,
    }
    refused = "a refusal is `Rejected`, e.g. round_out_of_order, invalid_correction"
    with_project = {
        "type": "object",
        "required": ["project_id"],
        "properties": {"project_id": string},
    }
    return {
        "Round": {
            "type": "object",
            "description": "One measured round of an interactive QEC session.",
            "required": list(round_fields),
            "properties": round_fields,
        },
        "Syndrome": {
            "description": "A measured round as published, with its project.",
            "allOf": [_ref(SCHEMAS + "Round"), with_project],
        },
        "Readout": {
            "type": "object",
            "required": list(readout_fields),
            "properties": readout_fields,
        },
        "CorrectionAccepted": {
            "type": "object",
            "description": f"The reply to a correction ({refused}).",
            "required": ["status", "position"],
            "properties": {
                "status": {"type": "string", "const": "accepted"},
                "position": position,
                "next": {**_ref(SCHEMAS + "Round"), "description": "the next round, measured"},
            },
            "additionalProperties": False,
        },
        "Empty": {"type": "string", "maxLength": 0, "description": "no payload at all"},
    }


# -- the document ---------------------------------------------------------------------------


def _who(model: type[Command]) -> str:
    """Who may send a command, from its ACCESS and SCOPE (commands/authorization.py)."""
    if model.project_scoped():
        where = "the command's project (`X-Project-Id`, else the caller's default one)"
        who = f"the `{model.ACCESS}` role in {where}"
        keys = f"or an API key with scope `{model.SCOPE}`" if model.SCOPE else "not an API key"
    else:
        who = "an admin" if model.ACCESS == "admin" else "any signed-in person"
        keys = "not an API key"
    return f"Needs {who}, {keys}."


class _Document:
    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas
        self.messages: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}

    def message(self, key: str, payload: str | dict[str, Any], **fields: Any) -> str:
        assert key not in self.messages, f"message {key} defined twice"
        body = _ref(SCHEMAS + payload) if isinstance(payload, str) else payload
        self.messages[key] = {"name": key, **fields, "payload": body}
        return key

    def channel(self, key: str, address: str | None, messages: list[str], **fields: Any) -> None:
        channel = {"address": address, **fields}
        channel["messages"] = {m: _ref(MESSAGES + m) for m in messages}
        if params := re.findall(r"\{(\w+)\}", address or ""):  # each {name} in the address
            channel["parameters"] = {p: _ref(f"#/components/parameters/{p}") for p in params}
        self.channels[key] = channel

    def operation(
        self, key: str, action: str, channel: str, messages: list[str], tag: str, **fields: Any
    ) -> None:
        self.operations[key] = {
            "action": action,
            "channel": _ref(f"#/channels/{channel}"),
            **fields,
            "messages": [_ref(f"#/channels/{channel}/messages/{m}") for m in messages],
            "tags": [{"name": tag}],
        }

    def replies(self, messages: list[str]) -> dict[str, Any]:
        return {
            "channel": _ref(f"#/channels/{REPLY}"),
            "messages": [_ref(f"#/channels/{REPLY}/messages/{m}") for m in messages],
        }


def build_asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a dict) of every subject qledger sends or takes."""
    names, schemas = _model_schemas()
    schemas["CorrectionRequest"] = _correction_request(
        schemas[names[("command", SubmitQecCorrection.SUBJECT)]]
    )
    hand_written = {
        "CommandHeaders": _command_headers(),
        "EventHeaders": _event_headers(),
        "EventEnvelope": _event_envelope(),
        **_data_plane(),
    }
    clash = sorted(set(hand_written) & set(schemas))
    assert not clash, f"a model is named like a hand-written schema: {clash}"
    schemas.update(hand_written)
    doc = _Document(schemas)
    headers = _ref(SCHEMAS + "CommandHeaders")

    # Every reply goes to the requester's inbox: one channel, no fixed address.
    for model in (Accepted, Rejected):
        doc.message(model.__name__, model.__name__, summary=_first_line(model.__doc__))
    doc.message("CorrectionAccepted", "CorrectionAccepted")
    doc.channel(
        REPLY, None, ["Accepted", "Rejected", "CorrectionAccepted"],
        description="The reply subject of the request (a NATS inbox, `_INBOX.…`).",
    )  # fmt: skip

    for subject, model in sorted(COMMANDS.items()):
        name, key, summary = model.__name__, f"cmd.{subject}", _first_line(model.__doc__)
        doc.message(name, names[("command", subject)], title=name, headers=headers)
        doc.channel(key, CMD_PREFIX + subject, [name])
        description = _who(model)
        if getattr(model, "REPLY_WITH_EVENT", False):  # commands/processor.py
            description += " The accepted reply carries `event`, the event it stored."
        doc.operation(key, "receive", key, [name], "commands", summary=summary or name,
                      description=description, reply=doc.replies(["Accepted", "Rejected"]))  # fmt: skip

    for event_type, cls in sorted(EVENT_TYPES.items()):
        payload_name = names[("event", event_type)]
        _event_payload(schemas[payload_name], cls)
        envelope = {
            "allOf": [
                _ref(SCHEMAS + "EventEnvelope"),
                {"type": "object", "properties": {
                    "type": {"type": "string", "const": event_type},
                    "payload": _ref(SCHEMAS + payload_name)}},
            ]
        }  # fmt: skip
        doc.message(event_type, envelope, title=cls.__name__,
                    headers=_ref(SCHEMAS + "EventHeaders"))  # fmt: skip
        key = f"evt.{event_type}"
        doc.channel(key, event_subject("{project}", event_type), [event_type],
                    description=f"On the JetStream stream `{STREAM}` ({EVENT_SUBJECTS}).")  # fmt: skip
        doc.operation(key, "send", key, [event_type], "events",
                      summary=f"Publishes each stored `{event_type}` event, in store order.")  # fmt: skip

    doc.message("Committed", "Empty", contentType="application/octet-stream")
    doc.channel("sys.committed", COMMITTED_SUBJECT, ["Committed"],
                description="Core NATS: the store has new events (wakes relays at once).")  # fmt: skip
    doc.operation("sys.committed", "send", "sys.committed", ["Committed"], "system",
                  summary="A command node committed a batch.")  # fmt: skip

    plane = {kind: DATA_PLANE_SUBJECT.format(backend="{backend}", kind=kind)
             for kind in ("syndrome", "correction", "readout")}  # fmt: skip
    for kind, message in (
        ("syndrome", "Syndrome"),
        ("readout", "Readout"),
        ("correction", "CorrectionRequest"),
    ):
        doc.message(message, message, **({"headers": headers} if kind == "correction" else {}))
        doc.channel(f"twin.{kind}", plane[kind], [message], description="Core NATS.")
    doc.operation(
        "twin.syndrome", "send", "twin.syndrome", ["Syndrome"], "twin data plane",
        summary="Every single round a QEC session measures (an autonomous session's first"
        " shot), once its step is stored.",
        description="Bulk steps (`GET …/rounds`, `count` > 1) answer their caller only. A"
        " bridge that misses a message reads the round again over HTTP, as recorded.",
    )  # fmt: skip
    doc.operation(
        "twin.readout", "send", "twin.readout", ["Readout"], "twin data plane",
        summary="Every readout of the FPGA controller API (`twin.take_readout`).",
    )  # fmt: skip
    doc.operation(
        "twin.correction", "receive", "twin.correction", ["CorrectionRequest"],
        "twin data plane",
        summary="A decoder's correction for the round just measured.",
        description=_who(SubmitQecCorrection) + " The correction is recorded and, with"
        " `measure_next` (default true here), the next round is measured in the same store"
        " commit; the reply carries it, and it is also published on `…syndrome`.",
        reply=doc.replies(["CorrectionAccepted", "Rejected"]),
    )  # fmt: skip

    return {
        "asyncapi": "3.0.0",
        "info": _info(),
        "defaultContentType": "application/json",
        "servers": _servers(),
        "channels": doc.channels,
        "operations": doc.operations,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": doc.messages,
            "parameters": {
                "project": {"description": "a project id; `_identity` for account events"},
                "backend": {"description": "a twin backend id, e.g. `square_64`"},
            },
        },
    }


def _info() -> dict[str, Any]:
    try:
        release = version("qledger")
    except PackageNotFoundError:  # run from a source tree that was never installed
        release = "0.0.0"
    return {
        "title": "qledger bus",
        "version": release,
        "description": (
            "Every NATS subject of qledger, generated from its pydantic models by"
            " `qledger docs` (adapters/asyncapi.py); a running server serves it at"
            " `/api/asyncapi.json`.\n\n"
            "* `qledger.cmd.<context>.<command>`: commands, as NATS requests with a JSON"
            f" body of at most {MAX_COMMAND_BYTES} bytes and a credential in the headers;"
            " the reply is `Accepted` or `Rejected`.\n"
            "* `qledger.evt.<project>.<context>.<EventType>`: every stored event in its"
            f" envelope, in store order, on the JetStream stream `{STREAM}`.\n"
            "* `qledger.sys.committed`: core NATS, empty: the store has new events.\n"
            "* `qledger.twin.<backend>.{syndrome,correction,readout}`: the digital twin's"
            " data plane for FPGA bridges (core NATS).\n\n"
            "Operations are qledger's: `receive` is what qledger takes (send it), `send`"
            " what it publishes (subscribe to it). docs/bus.md explains the rules."
        ),
        "tags": [
            {"name": "commands", "description": "request-reply; every write goes through one"},
            {"name": "events", "description": "the record, on JetStream"},
            {"name": "system", "description": "qledger's own signals"},
            {"name": "twin data plane", "description": "QEC rounds and readouts, core NATS"},
        ],
    }


def _servers() -> dict[str, Any]:
    port = {"default": "4222", "description": "`QLEDGER_NATS_PORT`; unset, a free one"}
    embedded = "The nats-server `qledger serve` starts; its URL is in `<data dir>/nats.url`."
    site = "A site NATS (`QLEDGER_NATS_URL`) carries the same subjects."
    return {
        "embedded": {
            "host": "127.0.0.1:{port}",
            "protocol": "nats",
            "description": f"{embedded} {site}",
            "variables": {"port": port},
        }
    }
