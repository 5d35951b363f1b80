"""fedcondense.client."""
