"""Every projector the read side runs, in the order they see a batch."""

from __future__ import annotations

from projections.base import Projector
from projections.chips import ChipProjector
from projections.executions import ExecutionProjector
from projections.identity import IdentityProjector
from projections.provenance import ProvenanceProjector
from projections.task_files import TaskFilesProjector
from projections.twin import TwinProjector
from projections.twin_qec import QecProjector


def all_projectors() -> list[Projector]:
    return [
        ChipProjector(),
        ExecutionProjector(),
        ProvenanceProjector(),
        IdentityProjector(),
        TwinProjector(),
        QecProjector(),
        TaskFilesProjector(),
    ]
