"""``ServerApp`` mains that keep their outcome, for runs inside Flower's simulation engine.

The engine swallows an exception raised in a ``ServerApp``; a :class:`CapturedSession` keeps
the report it returned or the error it raised, so the caller can return the one or re-raise
the other once the simulation has stopped. :class:`ServerSession` runs plain rounds of
broadcast → secure sum (:func:`~fedcondense.server.secure_sum.run_rounds`); the condensation
coordinator of a simulation is another one
(:class:`~fedcondense.simulations.runtime.federated_condense.CoordinatorSession`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flwr.app import Context
from flwr.serverapp import ServerApp
from flwr.serverapp.grid import Grid

from .secure_sum import MakeRound, OnSum, RunReport, TransportConfig, run_rounds


@dataclass
class CapturedSession:
    """A ``ServerApp`` main that keeps its outcome: after the run, ``report`` holds what
    :meth:`run` returned, or ``error`` what it raised (the simulation engine swallows a
    ServerApp's exception; the caller re-raises ``error`` once the simulation has stopped)."""

    report: RunReport | None = field(default=None, kw_only=True)
    error: BaseException | None = field(default=None, kw_only=True)

    def __call__(self, grid: Grid, context: Context) -> None:
        try:
            self.report = self.run(grid, context)
        except BaseException as exc:
            self.error = exc
            raise

    def run(self, grid: Grid, context: Context) -> RunReport:
        raise NotImplementedError


@dataclass
class ServerSession(CapturedSession):
    """Rounds of broadcast → secure sum over ``make_round`` / ``on_sum`` (:func:`run_rounds`)."""

    rounds: int
    make_round: MakeRound
    on_sum: OnSum
    config: TransportConfig
    schema_hash: str

    def run(self, grid: Grid, context: Context) -> RunReport:
        return run_rounds(grid, context, rounds=self.rounds, make_round=self.make_round,
                          on_sum=self.on_sum, config=self.config, schema_hash=self.schema_hash)


def make_server_app(session: CapturedSession) -> ServerApp:
    """A ``ServerApp`` whose main function runs ``session``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        session(grid, context)

    return app
