"""fedcondense.protocol."""
