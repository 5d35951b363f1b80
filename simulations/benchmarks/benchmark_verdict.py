"""Who wins, cell by cell, and whether the utility targets hold: part of ``report.md``.

A *cell* is one (dataset, evaluation family, ε). For each cell :func:`side_by_side` puts the
full real table, a random real subset of the release's size, the condensed release (default
portfolio) and every DP peer (``dp_gaussian``, MST, AIM) in one row, mean ± sd over seeds,
and names the best DP release.

:func:`targets` checks the benchmark's utility targets at one ε (default 1), per dataset:

* a *large* table (at least :data:`LARGE_TRAINING_ROWS` training rows: a table of 2,000 rows
  split 70/30) must have the condensed mean ≥ every DP peer's mean in every family, a mean
  share of the full-data score of at least :data:`SHARE_TARGET`, and a seed-to-seed standard
  deviation of at most :data:`SD_TARGET` in every family;
* a *small* table must have the condensed mean ≥ the best DP peer's mean in at least
  :data:`SMALL_WIN_SHARE` of its cells.

Targets are read off the CSV like the rest of the report; nothing here runs a release.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .benchmark_grid import BASELINE_METHODS, PORTFOLIO

LARGE_TRAINING_ROWS = 1400
SHARE_TARGET = 0.92
SD_TARGET = 0.02
SMALL_WIN_SHARE = 0.75


def _stats(d: pd.DataFrame, method: str, eps: str, fam: str) -> tuple[float, float, int]:
    """Mean, sd and number of seeds of one release kind in one cell (NaN where absent)."""
    sel = d[(d.method == method) & (d.eval_family == fam)]
    if method == "condensed":
        sel = sel[sel.trained_with == PORTFOLIO]
    if method not in ("full_real", "random_subset"):
        sel = sel[sel.epsilon == eps]
    vals = sel.score.dropna()
    if vals.empty:
        return np.nan, np.nan, 0
    return float(vals.mean()), float(vals.std()) if len(vals) > 1 else np.nan, len(vals)


def cells(d: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, family, private ε) with the condensed release in it: means, sds
    and seed counts of every release kind, the best DP peer and whether condensed beat it."""
    recs = []
    cond = d[(d.method == "condensed") & (d.trained_with == PORTFOLIO) & (d.epsilon != "inf")]
    for (ds, eps), g in cond.groupby(["dataset", "epsilon"], sort=False):
        dd = d[d.dataset == ds]
        full_rows = dd[dd.method == "full_real"].release_rows
        n_train = int(pd.to_numeric(full_rows, errors="coerce").max()) if len(full_rows) else 0
        for fam in dict.fromkeys(g.eval_family):
            rec: dict[str, object] = {"dataset": ds, "epsilon": eps, "family": fam,
                                      "training_rows": n_train}
            for method in ("full_real", "random_subset", "condensed", *BASELINE_METHODS):
                mean, sd, n = _stats(dd, method, eps, fam)
                rec.update({f"{method}_mean": mean, f"{method}_sd": sd, f"{method}_n": n})
            peers = {b: rec[f"{b}_mean"] for b in BASELINE_METHODS
                     if not np.isnan(rec[f"{b}_mean"])}  # type: ignore[arg-type]
            best = max(peers, key=peers.get) if peers else ""  # type: ignore[arg-type]
            rec["best_peer"] = best
            rec["condensed_wins"] = bool(peers) and all(
                rec["condensed_mean"] >= v for v in peers.values())  # type: ignore[operator]
            recs.append(rec)
    return pd.DataFrame(recs)


def _fmt(mean: float, sd: float) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.3f}" if np.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


def side_by_side(c: pd.DataFrame, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows for one dataset: every release kind per (family, ε), and the winner."""
    rows = []
    for r in c[c.dataset == dataset].itertuples():
        rec = r._asdict()
        cellv = [_fmt(rec[f"{m}_mean"], rec[f"{m}_sd"])
                 for m in ("full_real", "random_subset", "condensed", *BASELINE_METHODS)]
        if not rec["best_peer"]:
            winner = "– (no DP peer)"
        else:
            winner = "**condensed**" if rec["condensed_wins"] else str(rec["best_peer"])
        rows.append([str(rec["family"]), str(rec["epsilon"])] + cellv + [winner])
    header = ["family", "ε", "full", "random subset", "condensed", *BASELINE_METHODS,
              "best DP release"]
    return header, rows


def targets_rule() -> str:
    """The targets :func:`targets` checks, in words (from the module's constants)."""
    return (f"Large tables (≥ {LARGE_TRAINING_ROWS:,} training rows, i.e. ≥ 2,000 rows before "
            f"the 70/30 split): condensed ≥ every DP peer in every family, ≥ "
            f"{100 * SHARE_TARGET:.0f} % of the full-data score on average, seed sd ≤ "
            f"{SD_TARGET}. Small tables: condensed ≥ the best DP peer in ≥ "
            f"{100 * SMALL_WIN_SHARE:.0f} % of cells.")


def targets(c: pd.DataFrame, epsilon: str = "1") -> list[str]:
    """One line per dataset at ``epsilon``: the target that applies and whether it is met."""
    lines = []
    at = c[c.epsilon == epsilon]
    small_wins = small_cells = 0
    for ds, g in at.groupby("dataset", sort=False):
        g = g[g.best_peer != ""]
        if g.empty:
            lines.append(f"- {ds}, ε={epsilon}: no DP peer ran, no verdict.")
            continue
        wins, n = int(g.condensed_wins.sum()), len(g)
        seeds = int(g.condensed_n.min())
        if int(g.training_rows.iloc[0]) >= LARGE_TRAINING_ROWS:
            share = float((g.condensed_mean / g.full_real_mean).mean())
            sd = float(g.condensed_sd.max())
            met = wins == n and share >= SHARE_TARGET and sd <= SD_TARGET
            lines.append(
                f"- {ds} (large, {int(g.training_rows.iloc[0])} training rows), ε={epsilon}, "
                f"{seeds} seeds: condensed ≥ every DP peer in {wins}/{n} families; "
                f"{100 * share:.1f} % of full-data score on average (target "
                f"{100 * SHARE_TARGET:.0f} %); largest seed sd {sd:.3f} (target "
                f"{SD_TARGET}) — **{'met' if met else 'not met'}**.")
        else:
            met = wins >= SMALL_WIN_SHARE * n
            small_wins, small_cells = small_wins + wins, small_cells + n
            lines.append(
                f"- {ds} (small, {int(g.training_rows.iloc[0])} training rows), ε={epsilon}, "
                f"{seeds} seeds: condensed ≥ the best DP peer in {wins}/{n} families (target "
                f"{100 * SMALL_WIN_SHARE:.0f} % of cells) — **{'met' if met else 'not met'}**.")
    if small_cells:
        met = small_wins >= SMALL_WIN_SHARE * small_cells
        lines.append(f"- all small tables, ε={epsilon}: condensed ≥ the best DP peer in "
                     f"{small_wins}/{small_cells} cells — **{'met' if met else 'not met'}**.")
    return lines
