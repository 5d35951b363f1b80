"""Data in: the consortium schema, its inference, the site table (CSV/Parquet ingress), encoding to
the model space and atomic file writes.
"""
