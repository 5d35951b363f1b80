"""ClientApp: a hospital's site (SecAgg+, its own privacy ledger).

A site started by ``fedcondense site start`` serves messages with its own warm executor and
the same app built from the installed ``fedcondense`` (:mod:`fedcondense.client.site_app`);
this module is what Flower's own ``flwr-clientapp`` loads when a site falls back to a fresh
process per message (another Flower version), so it stays light.
"""

from fedcondense.client.site_app import site_client_app

app = site_client_app()
