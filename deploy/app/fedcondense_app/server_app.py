"""ServerApp: the consortium coordinator (:func:`fedcondense.server.deployed_run.coordinate`)."""

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run (or resume) one deployed fedcondense run; imports happen here, not at load."""
    import logging

    from fedcondense.server.deployed_run import coordinate

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    coordinate(grid, context)
