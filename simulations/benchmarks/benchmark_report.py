"""``OUT/report.md`` and ``OUT/plots/*.png`` from a benchmark's ``results.csv`` and
``benchmark.json``: utility tables, condensation vs each DP baseline (wins / losses), the
cross-model transfer matrix, and the privacy audit. Everything is derived from the CSV, so the
report can be rewritten at any time (``fedcondense benchmark --report-only``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ...protocol.data.atomic_file import atomic_write_text
from . import benchmark_plots as plots
from .benchmark_grid import BASELINE_METHODS, KEY, PORTFOLIO
from .benchmark_verdict import cells, side_by_side, targets, targets_rule

ORDER = ("full_real", "random_subset", "condensed", *BASELINE_METHODS)


def load_results(out: Path) -> pd.DataFrame:
    """results.csv with ε and trained-with as text (``''`` = not applicable)."""
    df = pd.read_csv(out / "results.csv", dtype={"epsilon": str, "trained_with": str},
                     keep_default_na=False, na_values={"score": [""], "integrated_brier": [""]})
    for col in ("score", "integrated_brier", "mia_auc", "mia_ci_low", "mia_ci_high", "dcr_auc",
                "dcr_ci_low", "dcr_ci_high", "exact_copies", "near_copies", "seconds"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def _ms(vals: pd.Series) -> str:
    vals = vals.dropna()
    if vals.empty:
        return "–"
    return f"{vals.mean():.3f}" if len(vals) == 1 else f"{vals.mean():.3f} ± {vals.std():.3f}"


def _md(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def _label(method: str, eps: str) -> str:
    name = {"condensed": f"condensed ({PORTFOLIO})"}.get(method, method)
    return f"{name}, ε={eps}" if eps else name


def utility_table(d: pd.DataFrame) -> list[str]:
    """Rows: release (method, ε); columns: evaluation family; cells: mean ± sd over seeds."""
    fams = list(dict.fromkeys(d.eval_family))
    rows = []
    main = d[(d.method != "condensed") | (d.trained_with == PORTFOLIO)]
    for method in ORDER:
        m = main[main.method == method]
        for eps in plots.eps_order(list(m.epsilon)) or [""]:
            e = m[m.epsilon == eps]
            if not e.empty:
                rows.append([_label(method, eps)] + [_ms(e[e.eval_family == f].score) for f in fams])
    return _md(["release"] + fams, rows)


def versus_baselines(d: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Condensed (portfolio) vs each baseline at equal ε, per evaluation family: wins/cells."""
    cond = d[(d.method == "condensed") & (d.trained_with == PORTFOLIO)]
    rows, plain = [], []
    for base in BASELINE_METHODS:
        b = d[d.method == base]
        for eps in plots.eps_order(list(b.epsilon)):
            c_mean = cond[cond.epsilon == eps].groupby("eval_family").score.mean()
            b_mean = b[b.epsilon == eps].groupby("eval_family").score.mean()
            both = c_mean.index.intersection(b_mean.index)
            both = [f for f in both if not (np.isnan(c_mean[f]) or np.isnan(b_mean[f]))]
            if not both:
                continue
            diff = c_mean[both] - b_mean[both]
            wins = [f for f in both if diff[f] > 0]
            loses = [f for f in both if diff[f] <= 0]
            rows.append([base, eps, f"{len(wins)}/{len(both)}", f"{diff.mean():+.3f}",
                         ", ".join(wins) or "–", ", ".join(loses) or "–"])
            plain.append(f"ε={eps}: condensation beats {base} with {len(wins)} of {len(both)} "
                         f"families (mean difference {diff.mean():+.3f})")
    table = _md(["baseline", "ε", "condensed wins", "mean Δ (cond − base)", "wins with",
                 "loses with"], rows) if rows else ["(no baseline rows)", ""]
    return table, plain


def transfer_matrix(d: pd.DataFrame, eps: str) -> pd.DataFrame:
    c = d[(d.method == "condensed") & (d.epsilon == eps)]
    m = c.groupby(["trained_with", "eval_family"]).score.mean().unstack("eval_family")
    fams = [f for f in dict.fromkeys(d.eval_family) if f in m.columns]
    rows = [r for r in dict.fromkeys(c.trained_with)]
    return m.reindex(index=rows, columns=fams)


def audit_frame(d: pd.DataFrame) -> pd.DataFrame:
    """Per release (method, condensing family, ε): mean attack AUCs and intervals, copies."""
    recs = []
    d = d[d.eval_family != ""]
    for (method, tw, eps), g in d.groupby(["method", "trained_with", "epsilon"], sort=False):
        rel = _label(method, eps) if method != "condensed" else f"condensed ({tw}), ε={eps}"
        per_release = g.drop_duplicates("seed")
        recs.append({"release": rel, "method": method, "attack": "distance to closest record",
                     "auc": per_release.dcr_auc.mean(), "ci_low": per_release.dcr_ci_low.mean(),
                     "ci_high": per_release.dcr_ci_high.mean(),
                     "exact": per_release.exact_copies.max(), "near": per_release.near_copies.max()})
        recs.append({"release": rel, "method": method, "attack": "loss threshold (mean over families)",
                     "auc": g.mia_auc.mean(), "ci_low": g.mia_ci_low.mean(),
                     "ci_high": g.mia_ci_high.mean(), "exact": np.nan, "near": np.nan,
                     "max_auc": g.mia_auc.max()})
    return pd.DataFrame(recs)


def audit_table(a: pd.DataFrame) -> list[str]:
    rows = []
    for rel, g in a.groupby("release", sort=False):
        dcr = g[g.attack.str.startswith("distance")].iloc[0]
        mia = g[g.attack.str.startswith("loss")].iloc[0]
        rows.append([rel, f"{dcr.auc:.3f} [{dcr.ci_low:.3f}, {dcr.ci_high:.3f}]",
                     f"{mia.auc:.3f} [{mia.ci_low:.3f}, {mia.ci_high:.3f}] (max {mia.max_auc:.3f})",
                     f"{int(dcr.exact)}", f"{int(dcr.near)}"])
    return _md(["release", "DCR attack AUC [95 % CI]", "loss-threshold MIA AUC [95 % CI]",
                "exact copies (max)", "near copies (max)"], rows)


def subgroup_table(sub: pd.DataFrame, dataset: str) -> list[str]:
    """Mean utility per subgroup level: the full real table, then each release (condensed
    with the portfolio, baselines, random subsets), mean over seeds."""
    s = sub[sub.dataset == dataset].drop_duplicates(
        ["method", "trained_with", "epsilon", "seed", "subgroup", "level", "source"], keep="last")
    if s.empty:
        return []
    s = s.assign(col=s.subgroup + "=" + s.level + " (n=" + s.n_test.astype(str) + ")")
    cols = list(dict.fromkeys(s.col))
    ref = s[s.source == "full_real"].groupby("col").value.mean()
    rows = [["full real data (reference)"] + [f"{ref.get(c, np.nan):.3f}" for c in cols]]
    rel = s[(s.source == "synthetic") & ((s.method != "condensed") | (s.trained_with == PORTFOLIO))]
    for method in ORDER:
        m = rel[rel.method == method]
        for eps in plots.eps_order(list(m.epsilon)) or [""]:
            e = m[m.epsilon == eps]
            if not e.empty:
                means = e.groupby("col").value.mean()
                rows.append([_label(method, eps)] + [f"{means.get(c, np.nan):.3f}" for c in cols])
    fam = str(s.family.iloc[0])
    return ([f"### Utility by subgroup (evaluated with {fam}; levels with < 10 test rows or one "
             "class left out)", ""] + _md(["release"] + cols, rows))


def target_lines(out: Path) -> list[str]:
    """The report's "Targets at ε = 1" lines, for the console."""
    df = load_results(out)
    verdict = cells(df[df.status == "ok"])
    return targets(verdict) if len(verdict) else []


def write_report(out: Path) -> Path:
    """Write ``report.md`` and the plots; return the report's path."""
    df = load_results(out)
    meta = json.loads((out / "benchmark.json").read_text()) if (out / "benchmark.json").exists() else {}
    ok = df[df.status == "ok"]
    sub = pd.read_csv(out / "subgroups.csv", dtype={"epsilon": str, "trained_with": str,
                                                   "level": str}, keep_default_na=False,
                      na_values={"value": [""]}) if (out / "subgroups.csv").exists() \
        else pd.DataFrame(columns=["dataset"])
    lines = ["# fedcondense benchmark", "",
             f"Grid ({meta.get('grid', {}).get('name', 'custom')}): {meta.get('description', '')}.",
             f"Wall time so far: {meta.get('seconds', 0) / 60:.1f} min. Rows: {len(df)}.", "",
             "Utility = train the family on the release, test on the real 30 % hold-out "
             "(AUROC; C-index for survival); mean ± sd over seeds. Condensed sets and random "
             "subsets have 10 rows per class (40 rows for survival); DP baselines release as many "
             "rows as the real training table. ε = inf is non-private. Audit: members = training "
             "records, non-members = hold-out records; AUC 0.5 = attack no better than chance.", ""]
    per_release = ok.drop_duplicates(["dataset", "method", "trained_with", "epsilon", "seed"])
    times = per_release.groupby(["dataset", "method"], sort=False).seconds.mean()
    lines += ["Mean seconds per release (produce + first evaluation): " + "; ".join(
        f"{ds} {m} {v:.0f}" for (ds, m), v in times.items()) + ".", ""]
    in_grid = set(meta.get("grid", {}).get("baselines", BASELINE_METHODS))
    lines += ["## Baselines", ""] + [
        f"- {k}: {v}" + ("" if k in in_grid else " (not in this grid)")
        for k, v in meta.get("baselines", {}).items()]
    lines += ["- MST/AIM run on a public discretisation (10 bins per numeric column over its "
              "public bounds); they have no ε = inf mode and draw noise from OpenDP's secure "
              "generator, so their runs are not bit-reproducible.", ""]
    summary: list[str] = []
    verdict = cells(ok)
    for ds in dict.fromkeys(ok.dataset):
        d = ok[ok.dataset == ds]
        lines += [f"## {ds}", "", "### Utility", ""] + utility_table(d)
        if len(verdict) and ds in set(verdict.dataset):
            lines += ["### Side by side: every release per family and ε (best DP release: "
                      "highest mean; condensed wins ties)", ""] + _md(*side_by_side(verdict, ds))
        table, plain = versus_baselines(d)
        summary += [f"- {ds}, {p}" for p in plain]
        lines += ["### Condensation vs DP synthetic-data baselines (same ε)", ""] + table
        png = plots.utility_figure(ok, ds, out / "plots" / f"utility_{ds}.png")
        lines += [f"![utility vs ε, {ds}](plots/{png.name})", ""]
        lines += ["### Cross-model transfer (condense with row, evaluate with column)", ""]
        for eps in plots.eps_order(list(d[d.method == "condensed"].epsilon)):
            m = transfer_matrix(d, eps)
            lines += [f"ε = {eps}:", ""] + _md(
                ["condensed with"] + list(m.columns),
                [[str(i)] + [f"{v:.3f}" for v in r] for i, r in zip(m.index, m.to_numpy())])
            if m.shape[0] > 1:
                png = plots.transfer_figure(m, ds, eps, str(d.metric.iloc[0]),
                                            out / "plots" / f"transfer_{ds}_eps{eps}.png")
                lines += [f"![transfer {ds} ε={eps}](plots/{png.name})", ""]
        lines += subgroup_table(sub, ds)
        a = audit_frame(d)
        lines += ["### Privacy audit", ""] + audit_table(a)
        bad = a[(a.method != "full_real") & (a.method != "random_subset") & (a.exact > 0)]
        lines += [("**Exact copies of real rows found in: " + ", ".join(bad.release) + "**")
                  if len(bad) else "No private release contains an exact copy of a real "
                  "training row (random real subsets and the full data are copies by "
                  "construction, which shows the checks work).", ""]
        png = plots.audit_figure(a, f"{ds}: membership-inference attacks on each release\n"
                                 "(mean over seeds)", out / "plots" / f"audit_{ds}.png")
        lines += [f"![audit {ds}](plots/{png.name})", ""]
    ok_keys = set(map(tuple, ok[list(KEY)].astype(str).to_numpy()))
    failed = df[(df.status != "ok")
                & ~df[list(KEY)].astype(str).apply(tuple, axis=1).isin(ok_keys)]
    lines += ["## Summary: condensation vs baselines", ""] + (summary or ["(no baselines)"]) + [""]
    if len(verdict):
        lines += ["## Targets at ε = 1", "", targets_rule(), ""] + (
            targets(verdict) or ["(no ε = 1 cells)"]) + [""]
    if len(failed):
        lines += ["## Problems", ""] + [
            f"- {r.dataset} {r.method} {r.trained_with} ε={r.epsilon} seed {r.seed} "
            f"{r.eval_family}: {r.status}" for r in failed.itertuples()] + [""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
