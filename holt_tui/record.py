"""The light artefact record moved to ``holt_core.artefact_record`` (the CLI's ``hoard`` reads it too); re-exported
here for holt-tui's modules."""

from holt_core.artefact_record import HASH_FIELDS as HASH_FIELDS
from holt_core.artefact_record import LIGHT_FIELDS as LIGHT_FIELDS
from holt_core.artefact_record import ArtefactRecord as ArtefactRecord
from holt_core.artefact_record import records_from_rows as records_from_rows
