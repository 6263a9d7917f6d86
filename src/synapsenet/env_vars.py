"""The environment variables SynapseNet reads: every one starts with :data:`ENV_PREFIX`.

Kept apart from :mod:`synapsenet.config`, which builds the validated settings with
pydantic-settings, so that modules naming a variable in an error (the database, the object
stores) do not import it: a process that opens an engine directly never reads settings.
"""

from __future__ import annotations

from typing import Final

ENV_PREFIX: Final = "SYNAPSENET_"
