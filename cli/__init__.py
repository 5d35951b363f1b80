"""fedcondense.cli."""
