"""Condensation maths: the run's settings and privacy plan, initialisation, the synthetic set,
random directions, per-record losses, a site's update and the optimiser step.
"""
