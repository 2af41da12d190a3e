"""Qubits joined by multi-qubit operations: union-find, for the parts of a circuit that
can be simulated apart (twin/plan.py) and for the cost estimate's widest part
(twin/circuit_input.py)."""

from __future__ import annotations

from collections.abc import Iterable


class QubitGroups:
    def __init__(self) -> None:
        self._parent: dict[int, int] = {}

    def root(self, q: int) -> int:
        parent = self._parent
        parent.setdefault(q, q)
        while parent[q] != q:
            parent[q] = parent[parent[q]]  # path halving
            q = parent[q]
        return q

    def join(self, qubits: Iterable[int]) -> None:
        """Put these qubits in one group (a single qubit: just known)."""
        qubits = list(qubits)
        if not qubits:
            return
        first = self.root(qubits[0])
        for q in qubits[1:]:
            self._parent[self.root(q)] = first

    def members(self, q: int) -> set[int]:
        r = self.root(q)
        return {p for p in list(self._parent) if self.root(p) == r}

    def sizes(self) -> dict[int, int]:
        """Group root -> number of qubits in it."""
        out: dict[int, int] = {}
        for q in list(self._parent):
            r = self.root(q)
            out[r] = out.get(r, 0) + 1
        return out
