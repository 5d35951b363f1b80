"""Canary audit: an empirical lower bound on a site's ε, next to the accounted ε.

One-run auditing (Steinke, Nasr & Jagielski, NeurIPS 2023; maths in
:mod:`fedcondense.simulations.benchmarks.one_run_bound`) applied to one site of a federated
condensation, against the strongest party there is — the coordinator, which sees the site's
individual reply in every round (local noise, no secure aggregation to hide behind):

1. ``m`` canary records (:func:`~fedcondense.simulations.evaluation.canaries.make_canaries`) are each
   added to the site's table with probability 1/2 (the auditor's private coins);
2. the real pipeline runs: the table goes through site ingress
   (:func:`~fedcondense.protocol.data.site_table.load_site_table`), the coordinator is the real
   :class:`~fedcondense.server.orchestrator.Orchestrator` (calibration, DP initialisation,
   round requests, Adam steps), and the site answers with the protocol's own
   :func:`~fedcondense.protocol.condensation.federation.answer_init` /
   :func:`~fedcondense.protocol.condensation.federation.answer_round` (per-record losses, clipping, Poisson
   sampling, Gaussian noise) from a generator only the site holds (:class:`HonestSite`);
3. the coordinator scores every canary from the round replies it saw
   (:class:`~fedcondense.simulations.evaluation.canaries.WhiteBoxDecoder`; it leaves the initialisation
   reply unused, which can only weaken it, never invalidate the bound); a release-only adversary
   scores them by their loss under models trained on the release (black box);
4. the top ``k+`` scores are guessed in, the bottom ``k-`` out, and the correct guesses become
   a lower bound on ε at the stated confidence. A bound above the accounted ε flags a broken
   mechanism or accountant; a correct one stays below it (with probability ≥ the confidence).

DP must hold whatever the rest of the table is, so the audit may use a *small* real table
(``real_rows``) beside the canaries: with fewer records than directions the coordinator can
decode each round exactly when there is no noise, and measure the noise when there is. The
site, the coordinator's use of the replies (``reply_filter``) and the canaries' coins are
parameters, so tests can audit
deliberately broken sites; nothing here is reachable from a deployed site.

Run ``python -m fedcondense.simulations.benchmarks.canary_audit --help``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import pandas as pd

from ...protocol.condensation.condenser import CondenseConfig, make_families
from ...protocol.condensation.federation import FitCache, answer_init, answer_round
from ...protocol.condensation.site_update import RoundConfig
from ...protocol.condensation.synthetic_set import SyntheticSet
from ...protocol.data.schema import Schema
from ...protocol.data.site_table import SiteTable, load_site_table
from ...protocol.errors import FedcondenseError
from ...protocol.families.base import ModelFamily
from ...protocol.privacy.dp_mechanism import noise_generator
from ...server.orchestrator import Orchestrator, SiteInfo
from ..evaluation.canaries import WhiteBoxDecoder, black_box_scores, make_canaries
from .one_run_bound import AuditBound, audit_guesses

SITE_ID = "audited-site"


class AuditedSite(Protocol):
    """What the audit needs from a site: its two answers (a test double may break them)."""

    def init(self, table: SiteTable, schema: Schema, noise_std: float) -> np.ndarray: ...

    def round(self, table: SiteTable, synthetic: SyntheticSet,
              families: dict[str, ModelFamily], config: RoundConfig, sample_rate: float,
              noise_std: float, cache: FitCache) -> np.ndarray: ...


class HonestSite:
    """The real site computation, with sampling and noise from the site's own generator:
    by default the production one (:func:`~fedcondense.protocol.privacy.dp_mechanism.noise_generator`
    without a seed: CSPRNG uniforms, OpenDP Gaussians), or a given one for a reproducible
    audit (seeded by the auditor, never by the coordinator)."""

    def __init__(self, rng: np.random.Generator | None = None) -> None:
        self.rng, self.noise_source = (noise_generator(None) if rng is None
                                       else (rng, "numpy PCG64 seeded by the auditor"))

    def init(self, table: SiteTable, schema: Schema, noise_std: float) -> np.ndarray:
        return answer_init(table, schema, noise_std, self.rng)

    def round(self, table: SiteTable, synthetic: SyntheticSet,
              families: dict[str, ModelFamily], config: RoundConfig, sample_rate: float,
              noise_std: float, cache: FitCache) -> np.ndarray:
        return answer_round(table, synthetic, families, config, sample_rate, noise_std,
                            self.rng, cache)[0]


#: ``(kind, round_index, reply) -> vector the coordinator analyses`` (identity by default).
ReplyFilter = Callable[[str, int, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CanaryAuditResult:
    """Accounted ε beside the white-box (coordinator) and black-box (release) lower bounds."""

    accounted_epsilon: float
    delta: float
    noise_multiplier: float
    white_box: AuditBound
    black_box: AuditBound
    real_rows: int
    included: np.ndarray  # (m,) the canaries' coins
    white_scores: np.ndarray  # (m,) the coordinator's score per canary
    black_scores: np.ndarray  # (m,) the release holder's score per canary
    settings: dict[str, Any]
    seconds: float

    @property
    def flagged(self) -> bool:
        """True when the coordinator's bound exceeds the accounted ε (mechanism broken)."""
        return self.white_box.epsilon_lower_bound > self.accounted_epsilon

    def as_dict(self) -> dict[str, Any]:
        wb = self.white_box
        return {
            "accounted_epsilon": self.accounted_epsilon, "delta": self.delta,
            "empirical_epsilon_lower_bound": wb.epsilon_lower_bound,
            "confidence": wb.confidence, "flagged": self.flagged,
            "adversary": "coordinator (white box: sees the site's reply every round)",
            "m": wb.m, "k_plus": wb.k_plus, "k_minus": wb.k_minus, "guesses": wb.guesses,
            "correct_guesses": wb.correct, "choices_tried": wb.choices_tried,
            "black_box": {"adversary": "release holder (canary loss under models trained on "
                                       "the release)", **self.black_box.as_dict()},
            "noise_multiplier": self.noise_multiplier, "real_rows": self.real_rows,
            "canaries_included": int(self.included.sum()), "settings": self.settings,
            "seconds": round(self.seconds, 2),
            "method": "one-run audit, Steinke, Nasr & Jagielski (NeurIPS 2023), (eps, delta) "
                      "bound; add/remove adjacency; one site, local noise",
            "canaries": {"included": self.included.astype(int).tolist(),
                         "white_box_score": np.round(self.white_scores, 6).tolist(),
                         "black_box_score": np.round(self.black_scores, 6).tolist()},
        }


def _load_table(frame: pd.DataFrame, schema: Schema, folder: Path, name: str,
                **checks: Any) -> SiteTable:
    """``frame`` through site ingress (written as CSV, read back and validated)."""
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return load_site_table(path, schema, **checks)


def run_canary_audit(real: pd.DataFrame, schema: Schema, config: CondenseConfig, *,
                     canaries: int = 48, confidence: float = 0.95,
                     rng: np.random.Generator | None = None,
                     site: AuditedSite | None = None,
                     reply_filter: ReplyFilter | None = None) -> CanaryAuditResult:
    """Audit one site holding ``real`` (schema columns) plus randomly included canaries.

    Parameters
    ----------
    real:
        The site's other records (any table valid under ``schema``; may be small).
    config:
        The condensation settings audited (ε, δ, rounds, directions, sampling rate, ...).
    canaries:
        ``m``; keep ``len(real) + m`` below ``config.directions`` so that the coordinator can
        both decode exactly and estimate the noise from the residuals.
    rng:
        The auditor's generator: canary records and their coins. Default: fresh entropy.
    site:
        The site under audit. Default: :class:`HonestSite` with the production generator,
        or, when ``rng`` is given (a reproducible audit), with a numpy generator seeded from
        ``rng`` — never from anything the coordinator knows.
    reply_filter:
        What the coordinator does with each reply before decoding (default: nothing).
    """
    t0 = time.perf_counter()
    if site is None:  # the site's own generator: nothing the coordinator knows seeds it
        site = HonestSite(None if rng is None else
                          np.random.default_rng(rng.integers(0, 2**63, size=4)))
    rng = np.random.default_rng() if rng is None else rng
    canary_frame = make_canaries(schema, canaries, rng)
    included = rng.random(canaries) < 0.5
    site_frame = pd.concat([real, canary_frame[included]], ignore_index=True)
    with tempfile.TemporaryDirectory(prefix="fedcondense-canary-audit-") as tmp:
        table = _load_table(site_frame, schema, Path(tmp), "site")
        # what the adversary models: the same rows, encoded the same way
        loose = {"min_rows": 1, "allow_single_class": True}
        known = _load_table(pd.concat([real, canary_frame], ignore_index=True), schema,
                            Path(tmp), "known", **loose)
        canary_records = _load_table(canary_frame, schema, Path(tmp), "canaries", **loose)
    # The coordinator is told a declared capacity (all canaries), not the exact count.
    orch = Orchestrator(schema, config, [SiteInfo(SITE_ID, len(real) + canaries,
                                                  config.sample_rate)], mode="local")
    families = make_families(config, schema)
    decoder, cache = WhiteBoxDecoder(known, canaries, config.sample_rate), FitCache()
    seen = reply_filter or (lambda kind, t, reply: reply)
    if orch.needs_init():
        req = orch.init_request()
        reply = site.init(table, schema, req.noise_std)
        orch.apply_init(seen("init", 0, reply), [SITE_ID], [SITE_ID])
    while orch.rounds_done < config.rounds:
        req = orch.round_request()
        assert req.round_config is not None and req.synthetic is not None
        synthetic = SyntheticSet.from_arrays(schema, req.synthetic)
        reply = site.round(table, synthetic, families, req.round_config,
                           req.sample_rate_by_site[SITE_ID], req.noise_std, cache)
        observed = seen("round", req.round_index, reply)
        decoder.observe(cache.get(synthetic, families, req.round_config), observed)
        orch.apply_round(observed, [SITE_ID], [SITE_ID])
    assert orch.synthetic is not None
    accounted = orch.plan.epsilon
    delta = config.delta
    black_scores = black_box_scores(orch.synthetic, families, canary_records)
    white = audit_guesses(decoder.scores, included, delta, confidence)
    black = audit_guesses(black_scores, included, delta, confidence)
    settings = {"site_noise": getattr(site, "noise_source", type(site).__name__),
                "rounds": config.rounds, "directions": config.directions,
                "sample_rate": config.sample_rate, "rows": config.rows,
                "models": list(config.resolved_models(schema)), "init": config.init,
                "clip_norm": config.clip_norm, "accountant": config.accountant}
    return CanaryAuditResult(accounted, delta, orch.plan.sigma, white, black, len(real),
                             included, decoder.scores.copy(), black_scores, settings,
                             time.perf_counter() - t0)


def audit_plot(result: CanaryAuditResult, title: str, path: Path) -> Path:
    """Canary scores by rank, included vs not, with the guessed-in/-out zones shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .benchmark_plots import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, scores, bound, who in ((axes[0], result.white_scores, result.white_box,
                                    "coordinator (white box)"),
                                   (axes[1], result.black_scores, result.black_box,
                                    "release holder (black box)")):
        order = np.argsort(scores, kind="stable")
        rank = np.arange(len(scores))
        inc = result.included[order]
        ax.scatter(rank[inc], scores[order][inc], s=14, color="tab:red", label="canary included")
        ax.scatter(rank[~inc], scores[order][~inc], s=14, color="tab:blue", label="canary left out")
        m = len(scores)
        ax.axvspan(-0.5, bound.k_minus - 0.5, color="tab:blue", alpha=0.08, label="guessed out")
        ax.axvspan(m - bound.k_plus - 0.5, m - 0.5, color="tab:red", alpha=0.08, label="guessed in")
        ax.set_xlabel("canary rank by score")
        ax.set_ylabel("score")
        ax.set_title(f"{who}: {bound.correct}/{bound.guesses} correct, "
                     f"ε ≥ {bound.epsilon_lower_bound:.2f} ({bound.confidence:.0%})", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{title} — accounted ε = {result.accounted_epsilon:.2f}", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------- command line
def demo_site_table(dataset: str, sites: int, site: int, real_rows: int | None,
                    seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    """Site ``site`` (1-based) of the demo's split: 30 % test held out, iid over ``sites``;
    its first ``real_rows`` rows (all when ``None``)."""
    from ..evaluation.datasets import load_dataset
    from ..evaluation.site_splits import split_sites, train_test_split_table

    df, schema = load_dataset(dataset)
    train, _ = train_test_split_table(df, schema, 0.3, seed)
    if not 1 <= site <= sites:
        raise FedcondenseError(f"--site {site}: choose a site between 1 and --sites {sites}.")
    part = split_sites(train, schema, sites, "iid", seed)[site - 1]
    return (part if real_rows is None else part.iloc[:real_rows]).reset_index(drop=True), schema


def _load_mechanism(spec: str) -> Callable[[np.random.Generator], AuditedSite]:
    path, _, attr = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("canary_audit_mechanism", path)
    if not attr or module_spec is None or module_spec.loader is None or not Path(path).is_file():
        raise FedcondenseError(f"--mechanism {spec}: use FILE.py:FACTORY with an existing file.")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, attr):
        raise FedcondenseError(f"--mechanism {spec}: {path} defines no '{attr}'.")
    return getattr(module, attr)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fedcondense.simulations.benchmarks.canary_audit",
        description="One-run canary audit of one site (local noise) against the coordinator: "
                    "empirical lower bound on epsilon next to the accounted epsilon.")
    p.add_argument("--dataset", default="breast_cancer", help="bundled dataset (demo: breast_cancer)")
    p.add_argument("--epsilon", type=float, default=1.0)
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--directions", type=int, default=CondenseConfig.directions)
    p.add_argument("--sample-rate", type=float, default=CondenseConfig.sample_rate)
    p.add_argument("--rows-per-class", type=int, default=10)
    p.add_argument("--models", default="", help="comma-separated families (default: the task's)")
    p.add_argument("--canaries", type=int, default=48, help="m canaries, each included w.p. 1/2")
    p.add_argument("--real-rows", type=int, default=8,
                   help="real rows of the site kept beside the canaries (0 = all); keep "
                        "real rows + canaries below --directions")
    p.add_argument("--sites", type=int, default=3)
    p.add_argument("--site", type=int, default=1)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=None,
                   help="seeds canaries, coins, directions and the site's noise (a reproducible "
                        "audit, numpy noise); default: fresh coins and the production noise "
                        "generator")
    p.add_argument("--mechanism", default=None,
                   help="FILE.py:FACTORY, a site under test built from a generator (e.g. a "
                        "deliberately broken test double); default: the real site")
    p.add_argument("--out", type=Path, default=Path("runs/canary_audit"))
    p.add_argument("--plot", action="store_true", help="also write canary_audit.png")
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    args = _parser().parse_args(argv)
    try:
        if args.canaries < 2 or not 0 < args.confidence < 1 or args.real_rows < 0:
            raise FedcondenseError("--canaries must be >= 2, --confidence in (0, 1) and "
                                   "--real-rows >= 0.")
        real, schema = demo_site_table(args.dataset, args.sites, args.site, args.real_rows or None)
        models = tuple(m for m in args.models.split(",") if m)
        config = CondenseConfig(epsilon=args.epsilon, delta=args.delta, rounds=args.rounds,
                                directions=args.directions, sample_rate=args.sample_rate,
                                rows=args.rows_per_class, models=models, seed=args.seed)
        rng = None if args.seed is None else np.random.default_rng(args.seed)
        site = None
        if args.mechanism:
            site = _load_mechanism(args.mechanism)(np.random.default_rng(
                None if rng is None else rng.integers(2**63)))
        result = run_canary_audit(real, schema, config, canaries=args.canaries,
                                  confidence=args.confidence, rng=rng, site=site)
    except FedcondenseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = result.as_dict() | {"dataset": args.dataset, "mechanism": args.mechanism or "real site",
                              "seed": args.seed}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "canary_audit.json").write_text(json.dumps(out, indent=2) + "\n")
    if args.plot:
        audit_plot(result, f"Canary audit: {args.dataset}, {out['mechanism']}",
                   args.out / "canary_audit.png")
    print(json.dumps({k: out[k] for k in ("accounted_epsilon", "empirical_epsilon_lower_bound",
                                          "confidence", "m", "k_plus", "k_minus",
                                          "correct_guesses", "flagged")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
