"""Lineage (ancestors), impact (descendants) and recalibration plans, traversed in memory.

The PROV relations of a project form a directed graph, edges pointing from what was made
to what it came from: entity -wasGeneratedBy-> activity, activity -used-> entity,
entity -wasDerivedFrom-> entity. One networkx graph per project is kept in memory and
fed incrementally from `prov_relation` (rows are insert-only), so a traversal costs a few
dictionary lookups per node instead of one query per node. Details of the nodes reached
come from one set-based query at the end.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

import networkx as nx

from domain.errors import Kind
from projections.base import QueryError, ViewReader, iso
from projections.provenance import NOW, Moment, version_dict, versions_by_id

ENTITY, ACTIVITY = "entity", "activity"
DERIVED = "wasDerivedFrom"


class GraphReader(ViewReader, Protocol):
    def generation(self, projector: str) -> int: ...


class ProvenanceGraph:
    """The relation graphs of every project, kept up to date with the read model."""

    def __init__(self) -> None:
        self._graphs: dict[str, nx.DiGraph] = {}
        self._position = 0
        self._generation = -1
        self.loaded = False
        # Refreshes mutate the graphs; traversals must not see a half-added batch.
        self.lock = threading.Lock()

    def refresh(self, db: GraphReader) -> None:
        """Add relations projected since the last call (call with `lock` held)."""
        generation = db.generation("provenance")
        if generation == self._generation:
            return
        rows = db.rows(
            "SELECT project_id, relation, subject, object, epoch(recorded_at) AS at, position"
            " FROM prov_relation WHERE position > ? ORDER BY position",
            [self._position],
        )
        for r in rows:
            g = self._graphs.setdefault(r["project_id"], nx.DiGraph())
            subject_kind = ACTIVITY if r["relation"] == "used" else ENTITY
            object_kind = ACTIVITY if r["relation"] == "wasGeneratedBy" else ENTITY
            for node, kind in ((r["subject"], subject_kind), (r["object"], object_kind)):
                if node not in g:
                    # A node appears first in the relations recorded with it: that is when
                    # the lab learned of it, which is what `as_of` compares.
                    g.add_node(node, kind=kind, at=r["at"])
            g.add_edge(r["subject"], r["object"], relation=r["relation"])
            self._position = max(self._position, r["position"])
        self._generation = generation
        self.loaded = True

    def graph(self, project_id: str) -> nx.DiGraph:
        return self._graphs.get(project_id) or nx.DiGraph()


def _visible(g: nx.DiGraph, node: str, at: Moment) -> bool:
    return at.as_of is None or g.nodes[node]["at"] <= at.as_of.timestamp()


def _walk(
    g: nx.DiGraph, origin: str, *, max_depth: int, at: Moment, upstream: bool
) -> tuple[dict[str, int], list[tuple[str, str, str]]]:
    """Breadth-first from `origin`: {node: depth}, and the edges (subject, object,
    relation) crossed. Upstream follows every relation backwards in time; downstream
    follows wasDerivedFrom forwards (what was derived from the origin)."""
    depth = {origin: 0}
    edges: list[tuple[str, str, str]] = []
    queue = deque([origin])
    while queue:
        node = queue.popleft()
        if depth[node] >= max_depth:
            continue
        if upstream:
            nexts: Iterable[tuple[str, str, str]] = (
                (node, o, data["relation"]) for o, data in g.succ[node].items()
            )
        else:
            nexts = (
                (s, node, DERIVED) for s, rel in g.pred[node].items() if rel["relation"] == DERIVED
            )
        for subject, obj, relation in nexts:
            other = obj if upstream else subject
            if not _visible(g, other, at):
                continue
            edges.append((subject, obj, relation))
            if other not in depth:
                depth[other] = depth[node] + 1
                queue.append(other)
    return depth, edges


def _activities(db: ViewReader, project_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Task details of activities "<execution_id>:<task_id>" (ids never contain ":")."""
    if not ids:
        return {}
    wanted = set(ids)
    rows = db.rows(
        "SELECT execution_id, task_id, task_name, qid, status, start_at, end_at FROM task_result"
        " WHERE task_id IN (SELECT unnest(?::VARCHAR[])) AND project_id = ?",
        [list({i.split(":", 1)[1] for i in ids}), project_id],
    )
    out = {}
    for r in rows:
        key = f"{r['execution_id']}:{r['task_id']}"
        if key in wanted:
            out[key] = {"activity_id": key, **r, "start_at": iso(r["start_at"]), "end_at": iso(r["end_at"])}  # fmt: skip
    return out


def _traverse(
    db: GraphReader,
    graph: ProvenanceGraph,
    project_id: str,
    entity_id: str,
    *,
    max_depth: int,
    at: Moment,
    upstream: bool,
) -> tuple[dict[str, int], list[tuple[str, str, str]], dict[str, str]]:
    with graph.lock:
        graph.refresh(db)
        g = graph.graph(project_id)
        if (
            entity_id not in g
            or g.nodes[entity_id]["kind"] != ENTITY
            or not _visible(g, entity_id, at)
        ):
            raise QueryError(
                Kind.NOT_FOUND, "not_found", f"parameter version '{entity_id}' not found"
            )
        depth, edges = _walk(g, entity_id, max_depth=max_depth, at=at, upstream=upstream)
        return depth, edges, {n: g.nodes[n]["kind"] for n in depth}


def _graph_response(
    db: ViewReader,
    project_id: str,
    origin: str,
    depth: dict[str, int],
    edges: list[tuple[str, str, str]],
    kinds: dict[str, str],
    *,
    max_depth: int,
    at: Moment,
) -> dict[str, Any]:
    entity_ids = [n for n in depth if kinds[n] == ENTITY]
    versions = versions_by_id(db, project_id, entity_ids, at)
    activities = _activities(db, project_id, [n for n in depth if n not in versions])

    def node(n: str) -> dict[str, Any]:
        v = versions.get(n)
        return {
            "node_type": kinds[n],
            "node_id": n,
            "depth": depth[n],
            "entity": version_dict(v) if v else None,
            "activity": activities.get(n),
            "latest_version": v["latest_version"] if v else None,
        }

    return {
        "origin": node(origin),
        "nodes": [node(n) for n in sorted(depth, key=lambda n: (depth[n], n))],
        "edges": [{"relation_type": rel, "source_id": s, "target_id": o} for s, o, rel in edges],
        "max_depth": max_depth,
    }


def lineage(db, graph, project_id, entity_id, *, max_depth, at: Moment = NOW):
    depth, edges, kinds = _traverse(
        db, graph, project_id, entity_id, max_depth=max_depth, at=at, upstream=True
    )
    return _graph_response(
        db, project_id, entity_id, depth, edges, kinds, max_depth=max_depth, at=at
    )


def impact(db, graph, project_id, entity_id, *, max_depth, at: Moment = NOW):
    depth, edges, kinds = _traverse(
        db, graph, project_id, entity_id, max_depth=max_depth, at=at, upstream=False
    )
    return _graph_response(
        db, project_id, entity_id, depth, edges, kinds, max_depth=max_depth, at=at
    )


def impact_set(db, graph, project_id, entity_id, *, max_depth, at: Moment = NOW) -> dict[str, int]:
    """{entity_id: depth} of everything derived from `entity_id` (itself excluded)."""
    depth, _, _ = _traverse(
        db, graph, project_id, entity_id, max_depth=max_depth, at=at, upstream=False
    )
    depth.pop(entity_id)
    return depth


def recommendations(db, graph, project_id, entity_id, *, max_depth, at: Moment = NOW):
    """An ordered re-calibration plan: the tasks that produced what was derived from
    `entity_id`, each after the tasks whose outputs it reads (a topological order of
    the impact graph at task level; tasks caught in a cycle share a step)."""
    depth, edges, _ = _traverse(
        db, graph, project_id, entity_id, max_depth=max_depth, at=at, upstream=False
    )
    versions = versions_by_id(db, project_id, list(depth), at)
    source = versions[entity_id]
    affected = {e: v for e, v in versions.items() if e != entity_id}
    tasks: dict[str, dict[str, Any]] = {}
    for e, v in affected.items():
        t = tasks.setdefault(
            v["task_name"], {"params": set(), "qids": set(), "depth": depth[e], "entities": 0}
        )
        t["params"].add(v["parameter_name"])
        t["qids"].add(v["qid"])
        t["depth"] = min(t["depth"], depth[e])
        t["entities"] += 1
    order = nx.DiGraph()
    order.add_nodes_from(tasks)
    for derived, used, _ in edges:
        if derived in affected and used in affected:
            a, b = affected[used]["task_name"], affected[derived]["task_name"]
            if a != b:
                order.add_edge(a, b)  # a's outputs feed b: a runs first
    steps = nx.condensation(order)
    plan: list[dict[str, Any]] = []
    key = lambda c: min((tasks[t]["depth"], t) for t in steps.nodes[c]["members"])  # noqa: E731
    for step, component in enumerate(nx.lexicographical_topological_sort(steps, key=key), 1):
        for name in sorted(steps.nodes[component]["members"], key=lambda t: (tasks[t]["depth"], t)):
            t = tasks[name]
            how = (
                "directly" if t["depth"] == 1 else f"through {t['depth'] - 1} intermediate step(s)"
            )
            plan.append(
                {
                    "task_name": name,
                    "priority": t["depth"],
                    "step": step,
                    "affected_parameters": sorted(t["params"]),
                    "affected_qids": sorted(t["qids"]),
                    "reason": f"{', '.join(sorted(t['params']))} derived {how} from"
                    f" {source['parameter_name']} of {source['qid']}",
                }
            )
    return {
        "source_entity_id": entity_id,
        "source_parameter_name": source["parameter_name"],
        "source_qid": source["qid"],
        "recommended_tasks": plan,
        "total_affected_parameters": len(affected),
        "max_depth_reached": max(depth.values()),
    }
