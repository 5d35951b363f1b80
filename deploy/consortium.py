"""A whole consortium on loopback, with real processes: ``deploy/local-consortium.sh``.

:class:`LocalConsortium` creates the consortium PKI (CA, coordinator certificate, one node
key per site), starts the SuperLink with TLS, SuperNode authentication and runtime
dependency installation off, registers each site's key (again after a restart when the
SuperLink keeps its state in memory, Flower's default and ours: see :data:`LINK_STATES`), and
starts every site through the operator command ``fedcondense site start
--config site.toml`` (TLS, node key, node config with the site's table, ledger and budget).
Runs are submitted with ``flwr run deploy/app``. Everything started is stopped on exit,
also on failure; every wait is bounded.

Run ``python -m fedcondense.deploy.consortium --out DIR [--sites N]`` (what the shell script
does): it splits a bundled dataset into N site files, shows that a SuperNode with an
unregistered key is refused, runs one federated job and leaves ``DIR/synthetic.csv``,
``DIR/privacy.json`` (``per_site``), ``DIR/run.json`` and ``DIR/logs/``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..protocol.errors import FedcondenseError
from ..protocol.privacy.ledger import PrivacyLedger
from . import flwr_cli, pki
from .flower_commands import SUPERNODE_REFUSED, flower_env, free_port, port_open, superlink_command
from .processes import ManagedProcess, running_supernode

APP_DIR = Path(__file__).resolve().parent / "app"
CONNECTION = "consortium"
LINK_STATES = ("memory", "disk")
"""Where the SuperLink keeps its state. ``memory`` (Flower's default): registrations and run
history live in the process and are re-registered by :meth:`LocalConsortium.start_link` after
a restart; a run interrupted by a restart resumes from the coordinator's own checkpoint and
the sites' ledgers, which never lived in the SuperLink. ``disk``: ``superlink.db`` (SQLite) keeps
them across restarts, at about twice the CPU per round (measured in ``deploy/README.md``)."""


class LocalConsortium:
    """SuperLink + site daemons on 127.0.0.1 under ``work`` (a context manager)."""

    def __init__(self, work: str | Path, site_files: Mapping[str, Path], schema: Path, *,
                 budgets: Mapping[str, float] | None = None, delta_budget: float = 1e-5,
                 log_dir: str | Path | None = None,
                 env: Mapping[str, str] | None = None, link_state: str = "memory") -> None:
        if link_state not in LINK_STATES:
            raise FedcondenseError(f"link_state {link_state!r}: use one of {', '.join(LINK_STATES)}.")
        self.link_state = link_state
        self.work = Path(work).resolve()
        self.logs = Path(log_dir).resolve() if log_dir else self.work / "logs"
        self.site_files = {k: Path(v).resolve() for k, v in site_files.items()}
        self.schema = Path(schema).resolve()
        self.budgets = dict(budgets or {})
        self.env_extra = dict(env or {})  # e.g. FLWR_SUPEREXEC_TASK_POLL_INTERVAL
        self.delta_budget = delta_budget
        self.home = self.work / "flwr-home"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.keys = pki.init_consortium(self.work / "pki", ["127.0.0.1", "localhost"],
                                        [*self.site_files, "unregistered"], force=True)
        self.link: ManagedProcess | None = None
        self.link_starts = 0
        self.registered = False
        self.sites: dict[str, ManagedProcess] = {}
        self._stack = ExitStack()

    # ---------------------------------------------------------------- coordinator
    def start_link(self, timeout: float = 40.0) -> None:
        """Start (or restart, same port and, with ``disk`` state, same database) the TLS +
        node-auth SuperLink; a restarted in-memory SuperLink gets the site keys again."""
        database = self.work / "superlink.db" if self.link_state == "disk" else None
        argv = superlink_command(host="127.0.0.1", port=self.port, ca_cert=self.keys.server.ca_cert,
                                 cert=self.keys.server.cert, key=self.keys.server.key,
                                 database=database)
        self.link_starts += 1
        log = self.logs / ("superlink.log" if self.link_starts == 1
                           else f"superlink.restart-{self.link_starts - 1}.log")
        self.link = ManagedProcess("SuperLink", argv, log, env=self._env(self.home),
                                   timestamps=True).start()
        self.link.wait_for_log(r"Uvicorn running on https?://", timeout)
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise FedcondenseError(f"SuperLink not accepting connections on "
                                       f"{self.address}; see {log}.")
            time.sleep(0.2)
        flwr_cli.write_connection(self.home, CONNECTION, self.address, self.keys.ca.cert)
        if self.registered and self.link_state == "memory":
            self.register_sites()  # an in-memory SuperLink forgot them with its restart

    def _env(self, home: Path) -> dict[str, str]:
        return {**flower_env(home), **self.env_extra}

    def kill_link(self) -> None:
        """Crash the coordinator: SIGKILL the SuperLink and its ServerApp at once."""
        if self.link is not None:
            self.link.kill()
            self.link = None

    def register_sites(self) -> None:
        """Register every site's public key with the SuperLink (Flower's Control API)."""
        self.registered = True
        for site in self.site_files:
            flwr_cli.register_supernode(self.home, CONNECTION,
                                        self.keys.sites[site].public_key, name=site)

    # ---------------------------------------------------------------- sites
    def site_toml(self, site: str) -> Path:
        """The site's ``site.toml``. The local consortium's sites trust the aggregator
        (honest-but-curious, at least 2 sites per sum) and declare their row count rounded
        up as their public capacity."""
        folder = self.work / "sites" / site
        (folder / "state").mkdir(parents=True, exist_ok=True)
        path = folder / "site.toml"
        path.write_text(textwrap.dedent(f"""\
            [site]
            id = "{site}"
            data = "{self.site_files[site]}"
            schema = "{self.schema}"
            ledger = "state/ledger.json"
            capacity = {declared_capacity(self.site_files[site])}
            [privacy]
            epsilon-budget = {float(self.budgets.get(site, 10.0))!r}
            delta-budget = {self.delta_budget!r}
            trust-aggregator = true
            min-contributors = 2
            [coordinator]
            address = "{self.address}"
            root-certificates = "{self.keys.ca.cert}"
            private-key = "{self.keys.sites[site].private_key}"
            [supernode]
            runtime-port = {free_port()}
            log-file = "{self.logs / (site + '.log')}"
            max-wait-time = 120
            """), encoding="utf-8")
        return path

    def start_sites(self, sites: Sequence[str], timeout: float = 90.0) -> None:
        """``fedcondense site start --config site.toml`` for each (in parallel); wait until
        every one is connected. A site without a ledger gets one first, with its budget (what
        its operator does once with ``fedcondense site init``)."""
        for site in sites:
            toml = self.site_toml(site)
            if not self.ledger(site).exists():  # the operator's one-time `site init`
                PrivacyLedger.create(self.ledger(site), site=site,
                                     epsilon_budget=float(self.budgets.get(site, 10.0)),
                                     delta_budget=self.delta_budget)
            argv = [sys.executable, "-m", "fedcondense.cli.main", "site", "start", "--config",
                    str(toml)]
            self.sites[site] = ManagedProcess(
                f"site {site}", argv, self.logs / f"{site}.start.log",
                env=self._env(self.work / "sites" / site / "flwr")).start()
        for site in sites:
            self.sites[site].wait_for_log("connected to 127.0.0.1", timeout)

    def kill_site(self, site: str) -> None:
        """Crash a site daemon (SIGKILL, no goodbye to the SuperLink)."""
        self.sites.pop(site).kill()

    def ledger(self, site: str) -> Path:
        return self.work / "sites" / site / "state" / "ledger.json"

    def round_log(self, site: str) -> Path:
        """The site's one-line-per-request log (``fedcondense site`` writes it)."""
        return self.logs / f"{site}.rounds.log"

    def show_unregistered_refused(self, timeout: float = 40.0) -> str:
        """Start a SuperNode with an unregistered key; return the SuperLink's refusal line."""
        with running_supernode(name="unregistered", superlink=self.address,
                               root_certificates=self.keys.ca.cert,
                               private_key=self.keys.sites["unregistered"].private_key,
                               log_path=self.logs / "unregistered-supernode.log",
                               flwr_home=self.work / "rogue-home", wait_ready=False) as rogue:
            rc = rogue.wait_exit(timeout=timeout)
            if rc == 0 or not SUPERNODE_REFUSED.search(rogue.log_text()):
                raise FedcondenseError(f"the unregistered SuperNode was not refused (exit {rc}); "
                                       f"see {rogue.log_path}.")
        assert self.link is not None
        m = self.link.wait_for_log(r"No SuperNode found with the given public key", 10)
        return f"unregistered SuperNode refused (exit {rc}): SuperLink says '{m.group(0)}'"

    # ---------------------------------------------------------------- runs
    def submit(self, run_config: Mapping[str, Any], timeout: float = 90.0) -> int:
        return flwr_cli.submit_run(self.home, APP_DIR, CONNECTION, run_config=run_config,
                                   timeout=timeout)

    def wait(self, run_id: int, timeout: float, out: Path | None = None,
             echo: bool = False, status_every: float = 30.0) -> str:
        """Wait until run ``run_id`` is finished; return its final Flower status.

        With ``out`` (the run's out-dir) the wait watches the coordinator's files and asks
        Flower (``flwr ls``: a CLI process costing ~1-2 s of CPU) only when ``run.json``
        appears or every ``status_every`` seconds, so timing a run does not tax it; with
        ``echo`` each new line of ``out/progress.log`` is printed.
        """
        if out is None:
            return flwr_cli.wait_for_run(self.home, CONNECTION, run_id, timeout=timeout,
                                         poll=2.0)
        deadline = time.monotonic() + timeout
        shown, next_status = 0, time.monotonic() + status_every
        while True:
            progress = out / "progress.log"
            if echo and progress.exists():
                lines = progress.read_text(encoding="utf-8").splitlines()
                for line in lines[shown:]:
                    print(line, flush=True)
                shown = max(shown, len(lines))
            if (out / "run.json").exists() and status_every > 2.0:
                status_every, next_status = 2.0, time.monotonic()  # the run is ending
            if time.monotonic() >= next_status:
                status = flwr_cli.run_status(self.home, CONNECTION, run_id)
                if status.startswith("finished"):
                    return status
                next_status = time.monotonic() + status_every
            if time.monotonic() > deadline:
                raise FedcondenseError(f"run {run_id} not finished after {timeout:g} s.")
            time.sleep(0.5)

    # ---------------------------------------------------------------- lifecycle
    def stop(self) -> None:
        for site in list(self.sites):
            self.sites.pop(site).stop()
        if self.link is not None:
            self.link.stop()
            self.link = None

    def __enter__(self) -> "LocalConsortium":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def declared_capacity(path: Path) -> int:
    """A public capacity an operator would declare for the table at ``path``: its data rows
    rounded up to two significant digits."""
    from ..simulations.runtime.federated_condense import simulated_capacity

    with open(path, encoding="utf-8") as fh:
        rows = max(1, sum(1 for _ in fh) - 1)
    return simulated_capacity(rows)


def split_dataset(name: str, n_sites: int, folder: Path, seed: int = 0) -> tuple[dict[str, Path], Path]:
    """Export bundled dataset ``name`` and split it IID into ``site-1..site-N`` files."""
    import pandas as pd

    from ..protocol.data.schema import Schema
    from ..simulations.evaluation.datasets import export_dataset
    from ..simulations.evaluation.site_splits import split_sites

    folder.mkdir(parents=True, exist_ok=True)
    csv, schema_path = export_dataset(name, folder)
    schema = Schema.load(schema_path)
    parts = split_sites(pd.read_csv(csv), schema, n_sites, partition="iid", seed=seed)
    files = {}
    for i, part in enumerate(parts, start=1):
        files[f"site-{i}"] = folder / f"site-{i}.csv"
        part.to_csv(files[f"site-{i}"], index=False)
    return files, schema_path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="One federated fedcondense run on loopback with "
                                 "TLS, node authentication and real site daemons.")
    ap.add_argument("--out", type=Path, required=True, help="Output folder.")
    ap.add_argument("--sites", type=int, default=3, help="Number of site daemons (>= 2).")
    ap.add_argument("--dataset", default="heart_disease", help="Bundled dataset to split.")
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--directions", type=int, default=128)
    ap.add_argument("--rows", type=int, default=10)
    ap.add_argument("--models", default="logistic_regression")
    ap.add_argument("--budget", type=float, default=10.0, help="Each site's ε budget.")
    ap.add_argument("--timeout", type=float, default=600.0, help="Whole-run limit (s).")
    ap.add_argument("--link-state", choices=LINK_STATES, default="memory",
                    help="Where the SuperLink keeps registrations and runs: memory (Flower's "
                    "default, about half the CPU per round) or disk (superlink.db, kept "
                    "across SuperLink restarts).")
    args = ap.parse_args(argv)
    if args.sites < 2:
        raise FedcondenseError("--sites must be at least 2 (secure aggregation).")
    out = args.out.resolve()
    for name in ("synthetic.csv", "privacy.json", "run.json", "coordinator.json",
                 "checkpoint.npz"):
        (out / name).unlink(missing_ok=True)
    work = out / "consortium"
    files, schema = split_dataset(args.dataset, args.sites, work / "data")
    t0 = time.monotonic()
    with LocalConsortium(work, files, schema, budgets={s: args.budget for s in files},
                         log_dir=out / "logs", link_state=args.link_state) as c:
        c.start_link()
        c.register_sites()
        print(f"SuperLink on {c.address} (TLS, node auth); {len(files)} site keys registered",
              flush=True)
        print(c.show_unregistered_refused(), flush=True)
        c.start_sites(list(files))
        print(f"{len(files)} site daemons connected ({time.monotonic() - t0:.1f} s)", flush=True)
        run_id = c.submit({"schema-path": str(schema), "out-dir": str(out),
                           "sites": args.sites, "epsilon": args.epsilon,
                           "rounds": args.rounds, "directions": args.directions,
                           "rows": args.rows, "models": args.models, "stage-timeout": 60.0})
        t_run = time.monotonic()
        status = c.wait(run_id, args.timeout, out=out, echo=True)
        print(f"flwr run {run_id}: {status} in {time.monotonic() - t_run:.1f} s", flush=True)
    from ..server.deployed_run import summary_line

    if not (out / "run.json").exists():
        raise FedcondenseError(f"run {run_id} ended '{status}' without output; see "
                               f"{out / 'logs' / 'superlink.log'}.")
    print(summary_line(out))
    return 0 if status == "finished:completed" and (out / "synthetic.csv").exists() else 1


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: everything started is stopped


if __name__ == "__main__":
    import signal

    for _sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(_sig, _exit_on_signal)
    try:
        sys.exit(main())
    except FedcondenseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
