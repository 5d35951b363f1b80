"""fedcondense.simulations."""
