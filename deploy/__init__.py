"""fedcondense.deploy."""
