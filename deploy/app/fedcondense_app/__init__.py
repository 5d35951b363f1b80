"""Flower components of the deployed fedcondense app (thin; the code lives in fedcondense)."""
