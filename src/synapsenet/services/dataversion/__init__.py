"""Training data versioning and lineage.

Chunk-deduplicated content-addressed storage, schema evolution checks, a lineage graph of
transformations, and exact reconstruction of any past dataset.
"""

from synapsenet.services.dataversion.engine import HEAD, DatasetVersioningEngine
from synapsenet.services.dataversion.graph import CycleError, ImpactReport, LineageDAG
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.dataversion.lineage_model import (
    CodeIdentity,
    NodeKind,
    NodeRef,
    Transformation,
    TransformationType,
)
from synapsenet.services.dataversion.models import (
    Dataset,
    DatasetVersion,
    VerifyReport,
    VersionDiff,
)
from synapsenet.services.dataversion.pipelines import apply_transform
from synapsenet.services.dataversion.reconstruction import (
    DatasetReconstructor,
    ReplayReport,
    ReplayStep,
    RunDatasetsPort,
)
from synapsenet.services.dataversion.schema import (
    CompatibilityMode,
    Schema,
    SchemaChange,
    SchemaIncompatibleError,
)
from synapsenet.services.dataversion.tabular import ColumnStats, DatasetFormat, DatasetStats
from synapsenet.services.dataversion.transforms import TransformRegistry

__all__ = [
    "HEAD",
    "CodeIdentity",
    "ColumnStats",
    "CompatibilityMode",
    "CycleError",
    "Dataset",
    "DatasetFormat",
    "DatasetReconstructor",
    "DatasetStats",
    "DatasetVersion",
    "DatasetVersioningEngine",
    "ImpactReport",
    "LineageDAG",
    "LineageGraph",
    "NodeKind",
    "NodeRef",
    "ReplayReport",
    "ReplayStep",
    "RunDatasetsPort",
    "Schema",
    "SchemaChange",
    "SchemaIncompatibleError",
    "TransformRegistry",
    "Transformation",
    "TransformationType",
    "VerifyReport",
    "VersionDiff",
    "apply_transform",
]
