"""``fedcondense site ...``: what a hospital's operator runs.

* ``site check DATA --schema S.json`` — validate the local table before joining; prints
  counts only (never values); exit 0 when ready, 2 with one line saying what to fix.
* ``site init --config site.toml`` — create the site's privacy ledger with the budget
  ``site.toml`` declares (once; an existing ledger is never overwritten).
* ``site status --config site.toml`` — the privacy ledger: budget, spent, remaining, runs and
  rounds answered/refused.
* ``site start --config site.toml`` — validate config, data, schema, key and ledger, then run
  the Flower SuperNode in the foreground (for systemd) with TLS, node authentication and the
  node config the ClientApp reads; its output goes to the configured log file. A missing
  ledger is refused (never silently recreated with the full budget).
* ``ledger create LEDGER --site ID --budget-epsilon E --budget-delta D`` — create a ledger
  for ``fedcondense condense --ledger`` (central runs without a ``site.toml``).
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import typer

from ..protocol.errors import FedcondenseError
from .app import app

site_app = typer.Typer(help="Site (hospital) operations: check data, create the ledger "
                       "(init), ledger status, start the SuperNode.", no_args_is_help=True)
app.add_typer(site_app, name="site")
ledger_app = typer.Typer(help="Privacy ledgers: create one explicitly (a missing ledger is "
                         "never recreated).", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")

MISSING_LEDGER_FIX = ("create it once with `fedcondense site init --config {config}` (or, if "
                      "it existed, restore it from backup: a missing ledger is never "
                      "recreated, since that would forget spent privacy)")


def _echo_counts(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['file']} (schema {summary['schema']})", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("rows read", str(summary["rows_read"]))
    table.add_row("usable rows", str(summary["rows"]))
    for label, n in summary.get("class_counts", {}).items():
        table.add_row(f"class {label}", str(n))
    if "events" in summary:
        table.add_row("events", str(summary["events"]))
        table.add_row("censored", str(summary["censored"]))
    table.add_row("rows with empty cells", str(summary["dropped_missing"]))
    for col, n in (summary.get("missing_by_column") or {}).items():
        if n:
            table.add_row(f"  empty in {col}", str(n))
    table.add_row("values outside public bounds", str(summary["clipped"]))
    for col, n in (summary.get("clipped_by_column") or {}).items():
        if n:
            table.add_row(f"  outside bounds in {col}", str(n))
    Console().print(table)


@site_app.command("check", help="Validate the site's table against the consortium schema "
                  "(counts only). Exit 0 when it can join, 2 otherwise.")
def site_check(
    data: Path = typer.Argument(..., help="The site's table (CSV or Parquet)."),
    schema_path: Path = typer.Option(..., "--schema", help="Consortium schema JSON."),
    min_rows: int = typer.Option(10, "--min-rows", help="Fewest usable rows accepted."),
) -> None:
    from ..protocol.data.schema import Schema
    from ..protocol.data.site_table import check_site_table

    schema = Schema.load(schema_path)
    if schema.inferred_bounds_warning:
        typer.echo(f"warning: {schema.inferred_bounds_warning}", err=True)
    summary = check_site_table(data, schema, min_rows=min_rows)
    _echo_counts(summary)
    if not summary["ready"]:
        raise FedcondenseError(f"{data}: not ready to join: {'; '.join(summary['problems'])}. "
                               f"Fix the file (sites never drop or clip silently).")
    typer.echo(f"ready: {summary['rows']} rows match schema '{schema.name}' "
               f"({schema.hash()[:12]}).")


def _ledger_summary(path: Path) -> dict[str, Any]:
    """Counts from a ledger file: runs, rounds answered (sampled rounds charged), refused."""
    import json

    from ..protocol.privacy.ledger import PrivacyLedger

    book = PrivacyLedger.open(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    answered = sum(int(e.spend.get("count", 1)) for e in book.events
                   if e.spend.get("type") == "sampled_gaussian")
    refusals = raw.get("refusals")
    return {
        "site": book.site, "epsilon_budget": book.epsilon_budget,
        "delta_budget": book.delta_budget, "accountant": book.accountant,
        "spent": book.spent(), "remaining": book.remaining(),
        "runs": len({e.run_id for e in book.events}), "events": len(book.events),
        "answered": answered,
        "refused": len(refusals) if isinstance(refusals, list) else None,
        "last": book.events[-1].timestamp if book.events else None,
    }


@site_app.command("status", help="Privacy budget spent/remaining and rounds answered/refused, "
                  "from the site's ledger.")
def site_status(
    config: Path = typer.Option(..., "--config", help="The site's site.toml."),
) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..deploy.site_config import load_site_config

    cfg = load_site_config(config, check_files=False)
    console = Console()
    if not cfg.ledger.exists():
        console.print(f"site {cfg.site_id}: no ledger yet at {cfg.ledger} (budget "
                      f"ε={cfg.epsilon_budget:g}, δ={cfg.delta_budget:g}); "
                      + MISSING_LEDGER_FIX.format(config=cfg.source) + ".")
        return
    s = _ledger_summary(cfg.ledger)
    table = Table(title=f"site {s['site']} — privacy ledger {cfg.ledger}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("budget ε / δ", f"{s['epsilon_budget']:g} / {s['delta_budget']:g}")
    table.add_row(f"spent ε ({s['accountant']})", f"{s['spent']:.4g}")
    table.add_row("remaining ε", f"{s['remaining']:.4g}")
    table.add_row("runs", str(s["runs"]))
    table.add_row("rounds answered", str(s["answered"]))
    table.add_row("rounds refused", "not recorded" if s["refused"] is None else str(s["refused"]))
    table.add_row("last spend", s["last"] or "never")
    console.print(table)
    if s["site"] != cfg.site_id or s["epsilon_budget"] != cfg.epsilon_budget \
            or s["delta_budget"] != cfg.delta_budget:
        typer.echo(f"warning: {cfg.source} says site {cfg.site_id}, ε={cfg.epsilon_budget:g}, "
                   f"δ={cfg.delta_budget:g}; the ledger holds site {s['site']}, "
                   f"ε={s['epsilon_budget']:g}, δ={s['delta_budget']:g} (the ledger wins; "
                   f"`site start` refuses the mismatch).", err=True)


@site_app.command("init", help="Create the site's privacy ledger with the budget site.toml "
                  "declares (once; an existing ledger is never overwritten).")
def site_init(
    config: Path = typer.Option(..., "--config", help="The site's site.toml."),
) -> None:
    from ..deploy.site_config import load_site_config
    from ..protocol.privacy.ledger import PrivacyLedger

    cfg = load_site_config(config)
    book = PrivacyLedger.create(cfg.ledger, site=cfg.site_id, epsilon_budget=cfg.epsilon_budget,
                                delta_budget=cfg.delta_budget)
    typer.echo(f"created ledger {book.path} for site {book.site}: budget "
               f"ε={book.epsilon_budget:g}, δ={book.delta_budget:g}. Back it up after every run; "
               f"never delete it.")


@ledger_app.command("create", help="Create an empty privacy ledger with its total budget (for "
                    "`fedcondense condense --ledger`); an existing file is never overwritten.")
def ledger_create(
    path: Path = typer.Argument(..., help="The ledger JSON file to create."),
    site: str = typer.Option(..., "--site", help="Who the ledger belongs to (e.g. hospital-a)."),
    budget_epsilon: float = typer.Option(..., "--budget-epsilon", help="Total ε this data "
                                         "holder will ever spend."),
    budget_delta: float = typer.Option(..., "--budget-delta", help="Its δ (0 < δ < 1, "
                                       "typically below 1/number of records)."),
    accountant: str = typer.Option("rdp", "--accountant", help="rdp or pld: how the ledger "
                                   "composes its events."),
) -> None:
    from ..deploy.site_config import SITE_ID
    from ..protocol.privacy.ledger import PrivacyLedger

    if not SITE_ID.fullmatch(site):
        raise FedcondenseError(f"--site {site!r}: use 1-64 letters, digits, '.', '_' or '-', "
                               f"starting with a letter or digit.")
    if accountant not in ("rdp", "pld"):
        raise FedcondenseError(f"--accountant {accountant!r}: choose rdp or pld.")
    book = PrivacyLedger.create(path, site=site, epsilon_budget=budget_epsilon,
                                delta_budget=budget_delta, accountant=accountant)  # type: ignore[arg-type]
    typer.echo(f"created ledger {book.path} for {book.site}: budget ε={book.epsilon_budget:g}, "
               f"δ={book.delta_budget:g}. Back it up after every run; never delete it.")


def _check_node_key(path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key

    try:
        key = load_ssh_private_key(path.read_bytes(), None)
    except (ValueError, TypeError) as exc:
        raise FedcondenseError(f"{path}: not an unencrypted OpenSSH private key ({exc}); "
                               f"create one with `python -m fedcondense.deploy.pki node`.") \
            from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FedcondenseError(f"{path}: Flower needs an ECDSA (NIST curve) node key.")


def prepare_site(config: Path, *, create: bool = True) -> tuple[Any, list[str], str]:
    """Validate everything ``site start`` needs; return (config, argv, summary line).

    Raises :class:`FedcondenseError` (one line) for a bad config, a table that does not
    match the schema (strict load: no dropping, no clipping), an unusable key or CA file, a
    missing ledger (created only by ``site init``) or a ledger whose site/budget differ from
    the config. With ``create`` it writes the node-config TOML; without, it writes nothing
    (dry run).
    """
    from ..deploy.flower_commands import format_node_config, supernode_command
    from ..deploy.pki import load_certificate
    from ..deploy.site_config import load_site_config
    from ..protocol.data.schema import Schema
    from ..protocol.data.site_table import load_site_table, summarize_site_table
    from ..protocol.privacy.ledger import PrivacyLedger

    cfg = load_site_config(config)
    schema = Schema.load(cfg.schema)
    if schema.bounds_source != "declared" and not cfg.allow_inferred_schema:
        raise FedcondenseError(
            f"{cfg.schema}: its bounds were inferred from data (\"bounds_source\": "
            f"\"{schema.bounds_source}\"); bounds read from data are not private, so site "
            f"{cfg.site_id} refuses it. Use a schema with public, declared bounds, or accept "
            f"this one explicitly with `allow-inferred-schema = true` under [site] in "
            f"{cfg.source}.")
    if schema.bounds_source != "declared":
        typer.echo(f"warning: {schema.inferred_bounds_warning} (accepted: "
                   f"allow-inferred-schema = true in {cfg.source})", err=True)
    summary = summarize_site_table(load_site_table(cfg.data, schema))
    load_certificate(cfg.root_certificates)
    _check_node_key(cfg.private_key)
    if not cfg.ledger.exists():
        raise FedcondenseError(f"{cfg.ledger}: site {cfg.site_id} has no privacy ledger; "
                               + MISSING_LEDGER_FIX.format(config=cfg.source) + ".")
    book = PrivacyLedger.open(cfg.ledger)
    if (book.site, book.epsilon_budget, book.delta_budget) != \
            (cfg.site_id, cfg.epsilon_budget, cfg.delta_budget):
        raise FedcondenseError(
            f"{cfg.ledger}: holds site {book.site} with ε={book.epsilon_budget:g}, "
            f"δ={book.delta_budget:g}, but {cfg.source} says site {cfg.site_id}, "
            f"ε={cfg.epsilon_budget:g}, δ={cfg.delta_budget:g}; a ledger's budget never "
            f"changes: fix site.toml to match it.")
    node_config = cfg.state_dir / f"{cfg.site_id}.node-config.toml"
    if create:
        node_config.write_text(format_node_config(cfg.node_config()), encoding="utf-8")
    argv = supernode_command(superlink=cfg.coordinator, root_certificates=cfg.root_certificates,
                             private_key=cfg.private_key, node_config=node_config,
                             runtime_port=cfg.runtime_port, max_wait_time=cfg.max_wait_time)
    counts = summary.get("class_counts") or {"events": summary.get("events"),
                                             "censored": summary.get("censored")}
    line = (f"site {cfg.site_id}: {summary['rows']} rows {counts}, schema {schema.name} "
            f"({schema.hash()[:12]}), ledger spent ε={book.spent():.4g} of "
            f"{book.epsilon_budget:g}, coordinator {cfg.coordinator}")
    return cfg, argv, line


def _exit_reason(cfg: Any, rc: int, log: str) -> str:
    """One line saying why the SuperNode stopped, read from its log."""
    from ..deploy.flower_commands import SUPERNODE_REFUSED, SUPERNODE_TLS_FAILED

    if SUPERNODE_REFUSED.search(log):
        return (f"the coordinator {cfg.coordinator} refused site {cfg.site_id}: its public key "
                f"is not registered there (send {cfg.private_key.with_suffix('.pub')} to the "
                f"coordinator for `flwr supernode register`); see {cfg.log_file}.")
    if SUPERNODE_TLS_FAILED.search(log):
        return (f"could not verify the coordinator {cfg.coordinator}'s TLS certificate with "
                f"{cfg.root_certificates} (wrong ca.crt, or the certificate does not list this "
                f"host name/IP); see {cfg.log_file}.")
    lines = [ln for ln in log.splitlines() if "ERROR" in ln or "Exit Code" in ln]
    detail = lines[-1].split("ERROR", 1)[-1].strip(" :") if lines else "no error logged"
    return f"SuperNode exited with status {rc} ({detail}); see {cfg.log_file}."


@site_app.command("start", help="Validate the site (config, data, key, ledger) and run its "
                  "Flower SuperNode in the foreground; output goes to the log file.")
def site_start(
    config: Path = typer.Option(..., "--config", help="The site's site.toml."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the SuperNode "
                                 "command line without starting it."),
    flwr_home: Optional[Path] = typer.Option(None, "--flwr-home", envvar="FLWR_HOME",
                                             help="Flower home (apps cache); default: "
                                             "<log folder>/flwr."),
) -> None:
    import shlex

    from ..deploy.flower_commands import SUPERNODE_READY, flower_env
    from ..deploy.site_daemon import SiteDaemon, warm_mode

    cfg, argv, line = prepare_site(config, create=not dry_run)
    warm, why_cold = warm_mode()
    env = flower_env(flwr_home or cfg.state_dir / "flwr")
    daemon = SiteDaemon(cfg.site_id, argv, cfg.log_file, env, warm=warm,
                        secret_path=cfg.state_dir / f"{cfg.site_id}.superexec.secret")
    typer.echo(line)
    if dry_run:
        typer.echo(shlex.join(daemon.argv))
        if warm:
            typer.echo("warm executor: " + shlex.join(daemon.executor_argv()))
        else:
            typer.echo(f"note: {why_cold}")
        return
    if not warm:
        typer.echo(f"warning: {why_cold}", err=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(cfg.log_file, "a", encoding="utf-8") as fh:
        fh.write(f"{stamp} fedcondense site start: {line}\n{stamp} command: "
                 f"{shlex.join(daemon.argv)}\n")
    stopping: list[int] = []
    log_mark = len(daemon.supernode.log_text())  # a "connected" line must be new

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        daemon.start()
        typer.echo(f"SuperNode pid {daemon.supernode.pid}"
                   + (f", warm executor pid {daemon.executor.pid}" if daemon.executor else "")
                   + f"; log: tail -f {cfg.log_file}")
        announced, connected, restarts, node_restarts = False, False, 0, 0
        while not stopping:
            rc = daemon.check_supernode(connected)
            if rc is not None:
                raise FedcondenseError(_exit_reason(cfg, rc, daemon.supernode.log_text()))
            if daemon.supernode_restart_count > node_restarts:
                node_restarts, announced = daemon.supernode_restart_count, False
                typer.echo(f"SuperNode exited after it had connected (coordinator restarted?); "
                           f"started again (pid {daemon.supernode.pid})")
            problem = daemon.check_executor()
            if problem:
                raise FedcondenseError(problem)
            if daemon.restart_count > restarts:
                restarts = daemon.restart_count
                typer.echo(f"warm executor exited; restarted (pid {daemon.executor.pid})")
            if not announced and daemon.supernode.popen is not None:
                m = SUPERNODE_READY.search(daemon.supernode.log_text(), log_mark)
                if m:
                    typer.echo(f"connected to {cfg.coordinator} as node {m.group(1)}")
                    announced = connected = True
                    log_mark = m.end()
            time.sleep(1.0)
        typer.echo("stopping SuperNode")
    finally:
        daemon.stop()
        for s, h in old.items():
            signal.signal(s, h)
