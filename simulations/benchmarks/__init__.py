"""Benchmarks that print tables (speed, federation, transport, utility grids, canary audits); not
run by the tests.
"""
