"""The simulation runtime: federated runs on Flower's simulation engine or the in-process grid,
engine polling, round timing and the compute plan.
"""
