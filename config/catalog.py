"""metrics.yaml and policy.yaml: read once at start-up, validated strictly.

A typo in a lab's configuration must not silently turn a check off, so unknown keys,
wrong types and bad values stop the start with the file and line of the offending node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from yaml.constructor import SafeConstructor

from domain.metrics import (
    EvaluationMode,
    MetricCatalog,
    MetricDefinition,
    PolicyRule,
    Severity,
)

HERE = Path(__file__).parent
DEFAULT_METRICS = HERE / "metrics.yaml"
DEFAULT_POLICY = HERE / "policy.yaml"


class ConfigFileError(ValueError):
    """A configuration file that qledger refuses to start with."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Evaluation(_Strict):
    mode: EvaluationMode = EvaluationMode.NONE


class _Metric(_Strict):
    title: str
    unit: str = ""
    scale: float = Field(1.0, gt=0)
    description: str = ""
    evaluation: _Evaluation = _Evaluation()
    thresholds: dict[Literal["good", "bad"], float] = {}


class _MetricsFile(_Strict):
    qubit_metrics: dict[str, _Metric]
    coupling_metrics: dict[str, _Metric] = {}
    color_scale: dict[str, Any] = {}

    @model_validator(mode="after")
    def _one_meaning_per_name(self) -> _MetricsFile:
        both = set(self.qubit_metrics) & set(self.coupling_metrics)
        if both:
            raise ValueError(f"defined as both qubit and coupling metric: {sorted(both)}")
        return self


class _Rule(_Strict):
    parameter: str
    severity: Severity = Severity.WARN
    min: float | None = None
    max: float | None = None
    staleness_hours: float | None = Field(None, gt=0)
    uncertainty_ratio: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _checks_something(self) -> _Rule:
        if all(
            v is None for v in (self.min, self.max, self.staleness_hours, self.uncertainty_ratio)
        ):
            raise ValueError("a rule needs min, max, staleness_hours or uncertainty_ratio")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class _PolicyFile(_Strict):
    rules: list[_Rule] = []


MAX_YAML_NODES = 100_000  # after expanding aliases: a few anchors can stand for billions


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document stands for once aliases are expanded (memoised per node, so
    this walk costs what the text does)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_YAML_NODES + 1  # a node that contains itself: refused
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(n, memo) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = size = min(size, MAX_YAML_NODES + 1)
    return size


def _where(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f"{mark.line + 1}:{mark.column + 1}:" if mark is not None else ""


def _problem(err: yaml.YAMLError) -> str:
    """What is wrong, without the library's excerpt of the document."""
    problem = getattr(err, "problem", None)
    context = getattr(err, "context", None)
    return "; ".join(p for p in (context, problem) if p) or type(err).__name__


# libyaml's parser when it is there (it is, in PyYAML's wheels): the pure-Python one took
# about 1 s for the twin's config directory, inside the command writer, on every config
# write, valid or not.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _plain(node: yaml.Node) -> Any:
    """Python values of a composed document: constructed from the nodes themselves (safe
    constructors only), not by emitting the document and parsing it a second time."""
    return SafeConstructor().construct_document(node) if node is not None else None


def _node_at(root: yaml.Node, loc: tuple[Any, ...]) -> yaml.Node:
    """The deepest YAML node along a pydantic error location (for its line number)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                return node
            key, node = match[0]
            if part == loc[-1]:
                return key  # an unknown key or a bad value: the key's line names it
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def _load(path: Path, model: type[_Strict]) -> _Strict:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigFileError(f"{path}: cannot read: {err.strerror}") from None
    return parse_text(text, path, model)


def parse_text(text: str, path: Path | str, model: type[BaseModel]) -> Any:
    """`text` validated by `model`; errors name `path` and the line of the bad node."""
    try:
        root = yaml.compose(text, Loader=_LOADER)
        if root is None:
            raise ConfigFileError(f"{path}:1: the file is empty")
        if _expanded_size(root, {}) > MAX_YAML_NODES:
            raise ConfigFileError(
                f"{path}: the YAML expands to more than {MAX_YAML_NODES} nodes (aliases)"
            )
        plain = _plain(root)
    except yaml.YAMLError as err:
        raise ConfigFileError(f"{path}:{_where(err)} not valid YAML: {_problem(err)}") from None
    try:
        return model.model_validate(plain)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = tuple(p for p in e["loc"] if not isinstance(p, str) or not p.startswith("["))
            node = _node_at(root, loc)
            where = ".".join(str(p) for p in loc) or "(top level)"
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            lines.append(f"{path}:{node.start_mark.line + 1}: {where}: {msg}")
        raise ConfigFileError("\n".join(lines)) from None


def load_metrics(path: Path = DEFAULT_METRICS) -> MetricCatalog:
    parsed = _load(path, _MetricsFile)
    assert isinstance(parsed, _MetricsFile)
    metrics: dict[str, MetricDefinition] = {}
    for target, group in (("qubit", parsed.qubit_metrics), ("coupling", parsed.coupling_metrics)):
        for key, m in group.items():
            metrics[key] = MetricDefinition(
                key=key,
                target=target,
                title=m.title,
                unit=m.unit,
                scale=m.scale,
                evaluation=m.evaluation.mode,
                description=m.description,
                thresholds=dict(m.thresholds),
            )
    return MetricCatalog(metrics=metrics, color_scale=dict(parsed.color_scale))


def load_policy(path: Path = DEFAULT_POLICY) -> tuple[PolicyRule, ...]:
    parsed = _load(path, _PolicyFile)
    assert isinstance(parsed, _PolicyFile)
    return tuple(PolicyRule(**r.model_dump()) for r in parsed.rules)
