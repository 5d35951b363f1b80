"""Product evaluation the command line uses: bundled datasets, utility, audits, canaries and the DP
peers (baselines).
"""
