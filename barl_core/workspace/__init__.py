"""The annotation workspace: layout, provenance, versions, validation, advice, audit."""
