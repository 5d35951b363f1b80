"""PNG plots of benchmark results (matplotlib, Agg backend): utility vs ε per dataset with one
panel per evaluation family, the cross-model transfer heat map, and the privacy-audit AUCs.

Every figure has a title, labelled axes with units and a legend; ε = ∞ (no privacy) sits at
the right end of an evenly spaced ε axis.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

METRIC_LABEL = {"auroc": "test AUROC (0.5 = chance, 1 = perfect)",
                "c_index": "test C-index (0.5 = chance, 1 = perfect)"}
STYLE = {"condensed": dict(color="tab:blue", marker="o", lw=2.2),
         "dp_gaussian": dict(color="tab:orange", marker="s"),
         "mst": dict(color="tab:green", marker="^"),
         "aim": dict(color="tab:purple", marker="v")}
LABEL = {"condensed": "condensed (this project)", "dp_gaussian": "DP Gaussian (built-in)",
         "mst": "MST (smartnoise)", "aim": "AIM (smartnoise)", "full_real": "full real data",
         "random_subset": "random real subset, condensed size"}


def eps_order(values: list[str]) -> list[str]:
    """ε labels sorted numerically with ``inf`` last."""
    return sorted({v for v in values if v != ""}, key=lambda v: math.inf if v == "inf" else float(v))


def _eps_tick(v: str) -> str:
    return "∞ (no DP)" if v == "inf" else v


def utility_figure(df: pd.DataFrame, dataset: str, path: Path) -> Path:
    """Utility vs ε for one dataset, a panel per evaluation family."""
    d = df[(df.dataset == dataset) & df.score.notna()]
    fams = list(dict.fromkeys(d.eval_family))
    eps = eps_order(list(d.epsilon))
    ncol = min(3, max(1, len(fams)))
    nrow = math.ceil(len(fams) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.8 * nrow + 0.6), squeeze=False)
    metric = str(d.metric.iloc[0]) if len(d) else "auroc"
    x = np.arange(len(eps))
    for ax, fam in zip(axes.flat, fams):
        f = d[d.eval_family == fam]
        for ref, ls in (("full_real", "-"), ("random_subset", "--")):
            vals = f[f.method == ref].score
            if len(vals):
                ax.axhline(vals.mean(), color="0.35", ls=ls, lw=1.4,
                           label=f"{LABEL[ref]} ({vals.mean():.2f})")
        for k, (method, style) in enumerate(STYLE.items()):
            m = f[f.method == method]
            if method == "condensed":
                m = m[m.trained_with == "portfolio"] if (m.trained_with == "portfolio").any() else m
            if m.empty:
                continue
            g = m.groupby("epsilon").score.agg(["mean", "std"]).reindex(eps)
            dodge = (k - (len(STYLE) - 1) / 2) * 0.04 * max(1, len(eps) - 1)  # keep bars apart
            ax.errorbar(x + dodge, g["mean"], yerr=g["std"].fillna(0), capsize=3,
                        label=LABEL[method], **style)
        ax.set_title(f"evaluated with {fam}", fontsize=10)
        ax.set_xticks(x, [_eps_tick(e) for e in eps])
        ax.set_xlabel("privacy budget ε (smaller = more private)")
        ax.set_ylabel(METRIC_LABEL.get(metric, metric), fontsize=8.5)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(fams):]:
        ax.axis("off")
    handles, labels = _legend_entries(axes)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8.5)
    fig.suptitle(f"{dataset}: utility of each release vs privacy budget\n(mean ± sd over "
                 "seeds; model trained on the release, tested on the real hold-out)", fontsize=11)
    fig.tight_layout(rect=(0, 0.1 if nrow == 1 else 0.06, 1, 0.95 if nrow > 1 else 0.92))
    return save_figure(fig, path)


def _legend_entries(axes: np.ndarray) -> tuple[list, list[str]]:
    seen: dict[str, object] = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            key = lab.split(" (")[0] if lab.startswith(("full", "random")) else lab
            seen.setdefault(key, (h, key))
    return [v[0] for v in seen.values()], [v[1] for v in seen.values()]  # type: ignore[index]


def transfer_figure(matrix: pd.DataFrame, dataset: str, eps: str, metric: str, path: Path) -> Path:
    """Heat map: rows = family the set was condensed with, columns = family evaluated with."""
    fig, ax = plt.subplots(figsize=(1.3 * matrix.shape[1] + 3.2, 0.7 * matrix.shape[0] + 2.2))
    im = ax.imshow(matrix.to_numpy(dtype=float), cmap="viridis", vmin=0.5, vmax=1.0, aspect="auto")
    for (i, j), v in np.ndenumerate(matrix.to_numpy(dtype=float)):
        if not math.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center",
                    color="white" if v < 0.8 else "black", fontsize=9)
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    ax.set_xlabel("model family evaluated with (trained on the condensed set)")
    ax.set_ylabel("condensed with")
    fig.colorbar(im, ax=ax, label=METRIC_LABEL.get(metric, metric))
    ax.set_title(f"{dataset}: cross-model transfer at ε = {_eps_tick(eps)}\n(mean over seeds)",
                 fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def audit_figure(audit: pd.DataFrame, title: str, path: Path) -> Path:
    """Attack AUCs with 95 % intervals, one row per release; 0.5 = attack no better than chance.

    ``audit`` columns: ``release``, ``attack``, ``auc``, ``ci_low``, ``ci_high``.
    """
    releases = list(dict.fromkeys(audit.release))
    attacks = list(dict.fromkeys(audit.attack))
    fig, ax = plt.subplots(figsize=(9.5, 0.45 * len(releases) * max(1, len(attacks)) ** 0.5 + 2))
    y = np.arange(len(releases))
    h = 0.8 / max(1, len(attacks))
    for k, att in enumerate(attacks):
        a = audit[audit.attack == att].set_index("release").reindex(releases)
        err = np.vstack([a.auc - a.ci_low, a.ci_high - a.auc]).clip(min=0)
        ax.barh(y + (k - (len(attacks) - 1) / 2) * h, a.auc - 0.5, left=0.5, height=h,
                xerr=np.nan_to_num(err), capsize=2, label=att)
    ax.axvline(0.5, color="black", lw=1, ls="--", label="chance (0.5)")
    ax.set_yticks(y, releases, fontsize=8)
    ax.invert_yaxis()
    lo = float(np.nanmin([0.4, *audit.ci_low.dropna()]))
    hi = float(np.nanmax([0.6, *audit.ci_high.dropna()]))
    ax.set_xlim(max(0.0, lo - 0.02), min(1.0, hi + 0.02))
    ax.set_xlabel("membership-inference attack AUC with 95 % bootstrap interval\n"
                  "(0.5 = chance; above 0.5 = training records distinguishable)")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write a PNG atomically (no half-written plot) and close the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
