"""Imports every module that declares tables, so ``Base.metadata`` is complete.

Migrations and the schema-drift test read the metadata through this module; a service that
adds tables adds its ``store`` module here.
"""

from synapsenet.core import auth, jobs, outbox
from synapsenet.core.db import Base
from synapsenet.services.abtesting import store as abtesting_store
from synapsenet.services.dataversion import store as dataversion_store
from synapsenet.services.experiments import store as experiments_store
from synapsenet.services.registry import store as registry_store

__all__ = [
    "Base",
    "abtesting_store",
    "auth",
    "dataversion_store",
    "experiments_store",
    "jobs",
    "outbox",
    "registry_store",
]
