"""fedcondense.server."""
