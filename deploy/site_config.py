"""The site configuration file (``site.toml``): one small file per hospital.

Format (relative paths are relative to the folder holding ``site.toml``)::

    [site]
    id = "hospital-a"                               # letters, digits, '.', '_', '-'
    data = "/srv/fedcondense/cohort.csv"            # the local table (CSV or Parquet)
    schema = "/srv/fedcondense/consortium.schema.json"
    ledger = "/var/lib/fedcondense/ledger.json"     # privacy ledger: BACK IT UP
    allow-inferred-schema = false                   # optional; true accepts a schema whose
                                                    # bounds were read from data (not private)
    capacity = 5000                                 # PUBLIC upper bound on the records

    [privacy]
    epsilon-budget = 3.0                            # total ε this site will ever spend
    delta-budget = 1e-5                             # its δ (0 < δ < 1)
    trust-aggregator = false                        # default: only the site's own noise
                                                    # counts (holds against a malicious
                                                    # coordinator)
    min-contributors = 3                            # with trust-aggregator = true: least
                                                    # number of sites per secure sum

    [coordinator]
    address = "coordinator.example.org:9093"        # SuperLink host:port
    root-certificates = "/etc/fedcondense/pki/ca.crt"
    private-key = "/etc/fedcondense/pki/node.key"   # OpenSSH EC key, mode 0600

    [supernode]                                     # optional section
    runtime-port = 9094                             # local ClientApp API on 127.0.0.1
    log-file = "/var/log/fedcondense/supernode.log" # default: <ledger folder>/supernode.log
    max-wait-time = 600                             # seconds to retry the coordinator
                                                    # (default: retry forever)

Unknown sections or keys are refused (a typo must not silently fall back to a default).
:meth:`SiteConfig.node_config` gives the SuperNode ``--node-config`` keys the ClientApp reads:
``site-id``, ``data-path``, ``schema-path``, ``ledger-path``, ``budget-epsilon``,
``budget-delta``, ``capacity``, ``trust-aggregator``, ``min-contributors``, ``round-log`` (one
line per answered or refused request, next to the log file). It never sets
``allow-seeded-noise``: a deployed site's noise is always its own.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol.errors import FedcondenseError

SITE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ALLOWED: dict[str, set[str]] = {
    "site": {"id", "data", "schema", "ledger", "allow-inferred-schema", "capacity"},
    "privacy": {"epsilon-budget", "delta-budget", "trust-aggregator", "min-contributors"},
    "coordinator": {"address", "root-certificates", "private-key"},
    "supernode": {"runtime-port", "log-file", "max-wait-time"},
}
_REQUIRED: dict[str, set[str]] = {
    "site": {"id", "data", "schema", "ledger", "capacity"},
    "privacy": {"epsilon-budget", "delta-budget"},
    "coordinator": {"address", "root-certificates", "private-key"},
}


class SiteConfigError(FedcondenseError):
    """``site.toml`` is malformed or points at something unusable."""


@dataclass(frozen=True)
class SiteConfig:
    """A validated ``site.toml`` (all paths absolute)."""

    source: Path
    site_id: str
    data: Path
    schema: Path
    ledger: Path
    epsilon_budget: float
    delta_budget: float
    coordinator: str
    root_certificates: Path
    private_key: Path
    runtime_port: int
    log_file: Path
    max_wait_time: float | None
    allow_inferred_schema: bool = False
    capacity: int = 1
    trust_aggregator: bool = False
    min_contributors: int = 0

    def node_config(self) -> dict[str, str | float]:
        """The SuperNode node config the fedcondense ClientApp reads."""
        return {"site-id": self.site_id, "data-path": str(self.data),
                "schema-path": str(self.schema), "ledger-path": str(self.ledger),
                "budget-epsilon": self.epsilon_budget, "budget-delta": self.delta_budget,
                "capacity": self.capacity,
                "trust-aggregator": "true" if self.trust_aggregator else "false",
                "min-contributors": self.min_contributors,
                "round-log": str(self.round_log)}

    @property
    def round_log(self) -> Path:
        """One line per answered or refused request, next to the log file."""
        return self.log_file.with_name(self.log_file.stem + ".rounds.log")

    @property
    def state_dir(self) -> Path:
        """Folder for files ``site start`` generates (next to the log file)."""
        return self.log_file.parent


def _fail(src: Path, where: str, problem: str) -> SiteConfigError:
    return SiteConfigError(f"{src}: {where}: {problem}")


def _path(raw: dict[str, Any], section: str, key: str, src: Path) -> Path:
    value = raw[section][key]
    if not isinstance(value, str) or not value.strip():
        raise _fail(src, f"[{section}] {key}", "give a path as a quoted string.")
    p = Path(value).expanduser()
    return (p if p.is_absolute() else src.parent / p).resolve()


def _number(raw: dict[str, Any], section: str, key: str, src: Path) -> float:
    value = raw[section][key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(src, f"[{section}] {key}", f"expected a number, got {value!r}.")
    return float(value)


def _existing_file(p: Path, src: Path, where: str, what: str) -> None:
    if not p.is_file():
        raise _fail(src, where, f"{p} does not exist or is not a file; {what}.")
    if not os.access(p, os.R_OK):
        raise _fail(src, where, f"{p} is not readable by this user; fix its permissions.")


def _check_address(address: Any, src: Path) -> str:
    where = "[coordinator] address"
    if not isinstance(address, str) or "://" in address:
        raise _fail(src, where, "give host:port without a URL prefix, e.g. "
                                "\"coordinator.example.org:9093\".")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _fail(src, where, f"{address!r} is not host:port (port 1-65535).")
    return address


def _read_toml(src: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiteConfigError(f"{src}: file not found; write a site.toml (see "
                              f"deploy/README.md).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteConfigError(f"{src}: cannot read it ({exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise SiteConfigError(f"{src}: not valid TOML ({exc}).") from None


def _check_sections(raw: dict[str, Any], src: Path) -> None:
    """Only known sections and keys, and every required key present."""
    for section, body in raw.items():
        if section not in _ALLOWED:
            raise _fail(src, f"[{section}]", f"unknown section; allowed: "
                        f"{', '.join('[' + s + ']' for s in _ALLOWED)}.")
        if not isinstance(body, dict):
            raise _fail(src, section, "must be a [section] table.")
        for key in body:
            if key not in _ALLOWED[section]:
                raise _fail(src, f"[{section}] {key}", f"unknown key; allowed: "
                            f"{', '.join(sorted(_ALLOWED[section]))}.")
    for section, keys in _REQUIRED.items():
        missing = sorted(keys - set(raw.get(section, {})))
        if missing:
            raise _fail(src, f"[{section}]", f"missing {', '.join(missing)}.")


def _privacy_section(raw: dict[str, Any], src: Path) -> tuple[float, float, bool, int]:
    """``[privacy]``: ε and δ budgets, trust in the aggregator, fewest contributors."""
    eps = _number(raw, "privacy", "epsilon-budget", src)
    if not (eps > 0 and math.isfinite(eps)):
        raise _fail(src, "[privacy] epsilon-budget", f"{eps:g}: must be a finite ε > 0.")
    delta = _number(raw, "privacy", "delta-budget", src)
    if not 0 < delta < 1:
        raise _fail(src, "[privacy] delta-budget", f"{delta:g}: must be 0 < δ < 1 (typically "
                    f"below 1/number of records).")
    trust = raw["privacy"].get("trust-aggregator", False)
    if not isinstance(trust, bool):
        raise _fail(src, "[privacy] trust-aggregator", f"{trust!r}: write true or false.")
    minimum = raw["privacy"].get("min-contributors", 0)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or (trust and minimum < 2):
        raise _fail(src, "[privacy] min-contributors", f"{minimum!r}: with trust-aggregator = "
                    f"true give an integer ≥ 2, the least number of sites per secure sum.")
    return eps, delta, trust, minimum


def load_site_config(path: str | Path, *, check_files: bool = True) -> SiteConfig:
    """Read and validate ``site.toml``.

    Parameters
    ----------
    path : str or Path
        The file.
    check_files : bool
        Also check that the data, schema, certificate and key files exist and are readable,
        that the private key is not readable by others (mode 0600) and that the ledger's
        folder exists and is writable.

    Returns
    -------
    SiteConfig

    Raises
    ------
    SiteConfigError
        One line naming the file, the section/key and the fix.
    """
    src = Path(path).expanduser().resolve()
    raw = _read_toml(src)
    _check_sections(raw, src)
    site_id = raw["site"]["id"]
    if not isinstance(site_id, str) or not SITE_ID.fullmatch(site_id):
        raise _fail(src, "[site] id", f"{site_id!r}: use 1-64 letters, digits, '.', '_' or "
                    f"'-', starting with a letter or digit.")
    eps, delta, trust, minimum = _privacy_section(raw, src)
    address = _check_address(raw["coordinator"]["address"], src)
    capacity = raw["site"]["capacity"]
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise _fail(src, "[site] capacity", f"{capacity!r}: give a positive integer, a public "
                    f"upper bound on the site's records (the exact count never leaves the site).")
    node = raw.get("supernode", {})
    port = node.get("runtime-port", 9094)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise _fail(src, "[supernode] runtime-port", f"{port!r}: give an integer 1-65535.")
    wait: float | None = None
    if "max-wait-time" in node:
        wait = _number(raw, "supernode", "max-wait-time", src)
        if not wait > 0:
            raise _fail(src, "[supernode] max-wait-time", "must be > 0 seconds.")
    ledger = _path(raw, "site", "ledger", src)
    allow_inferred = raw["site"].get("allow-inferred-schema", False)
    if not isinstance(allow_inferred, bool):
        raise _fail(src, "[site] allow-inferred-schema", f"{allow_inferred!r}: give true or false.")
    log_file = (_path(raw, "supernode", "log-file", src) if "log-file" in node
                else ledger.parent / "supernode.log")

    cfg = SiteConfig(
        source=src, site_id=site_id, data=_path(raw, "site", "data", src),
        schema=_path(raw, "site", "schema", src), ledger=ledger, epsilon_budget=eps,
        delta_budget=delta, coordinator=address,
        root_certificates=_path(raw, "coordinator", "root-certificates", src),
        private_key=_path(raw, "coordinator", "private-key", src), runtime_port=port,
        log_file=log_file, max_wait_time=wait, allow_inferred_schema=allow_inferred,
        capacity=capacity, trust_aggregator=trust, min_contributors=minimum,
    )
    if check_files:
        check_site_files(cfg)
    return cfg


def check_site_files(cfg: SiteConfig) -> None:
    """Check the files ``cfg`` points at (existence, permissions), not their content."""
    src = cfg.source
    _existing_file(cfg.data, src, "[site] data", "point it at the site's table")
    _existing_file(cfg.schema, src, "[site] schema", "use the consortium schema file")
    _existing_file(cfg.root_certificates, src, "[coordinator] root-certificates",
                   "use the consortium ca.crt")
    _existing_file(cfg.private_key, src, "[coordinator] private-key",
                   "use the site's node.key (python -m fedcondense.deploy.pki node)")
    mode = stat.S_IMODE(cfg.private_key.stat().st_mode)
    if mode & 0o077:
        raise _fail(src, "[coordinator] private-key", f"{cfg.private_key} is readable by "
                    f"others (mode {mode:o}); run: chmod 600 {cfg.private_key}")
    for folder, where in ((cfg.ledger.parent, "[site] ledger"),
                          (cfg.log_file.parent, "[supernode] log-file")):
        if not folder.is_dir():
            raise _fail(src, where, f"folder {folder} does not exist; create it.")
        if not os.access(folder, os.W_OK):
            raise _fail(src, where, f"folder {folder} is not writable by this user.")
    if cfg.ledger.exists() and not os.access(cfg.ledger, os.R_OK | os.W_OK):
        raise _fail(src, "[site] ledger", f"{cfg.ledger} must be readable and writable.")
