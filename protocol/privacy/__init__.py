"""Privacy: the noise mechanism, the accountant (calibration, spends), ledgers and site budgets,
the site's own policy and the claims a release makes.
"""
