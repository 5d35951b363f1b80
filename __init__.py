"""fedcondense: federated, differentially private dataset condensation for hospital consortia."""

__version__ = "0.1.0"
