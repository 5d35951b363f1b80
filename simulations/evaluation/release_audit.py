"""The privacy audit of one release, as ``fedcondense evaluate`` writes it (``audit.json``,
``subgroups.csv``, ``plots/audit.png``, ``plots/subgroups.png``, ``plots/utility.png``).

Members are the real training records the release was made from, non-members real records
it never saw (the test table). See :mod:`fedcondense.simulations.evaluation.audit` for the checks.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ...protocol.data.site_table import SiteTable  # noqa: E402
from ..benchmarks import benchmark_plots as bplots  # noqa: E402
from .audit import copy_counts, dcr_attack, loss_threshold_attack, subgroup_utility  # noqa: E402
from .utility import as_table  # noqa: E402


def audit_release(synthetic: SiteTable, train: SiteTable, test: SiteTable,
                  families: list[str]) -> tuple[dict[str, object], list[dict[str, object]]]:
    """Attacks (AUC with 95 % CI), copy counts and subgroup utility of one release."""
    schema = synthetic.schema
    syn, tr, te = as_table(synthetic), as_table(train), as_table(test)
    attacks = [dcr_attack(tr, te, syn).as_dict()]
    for fam in families:
        try:
            attacks.append(loss_threshold_attack(schema, fam, tr, te, syn).as_dict())
        except Exception as exc:  # a family that cannot be fitted on this release
            attacks.append({"attack": f"loss_threshold[{fam}]", "auc": math.nan,
                            "ci_low": math.nan, "ci_high": math.nan,
                            "note": f"could not fit: {type(exc).__name__}"})
    copies = copy_counts(train.frame.astype(str), synthetic.frame.astype(str), train.X, synthetic.X)
    subgroups: list[dict[str, object]] = []
    for fam in families:
        try:
            subgroups += subgroup_utility(schema, fam, syn, tr, te, test.frame)
        except Exception:  # noqa: BLE001 - a subgroup a family cannot score is left out
            continue
    audit = {"members": train.n_rows, "non_members": test.n_rows, "attacks": attacks,
             "copies": copies, "exact_copies_ok": copies["exact_copies"] == 0,
             "subgroup_columns": list(schema.subgroups),
             "note": "attack AUC 0.5 = no better than chance; members = --train records, "
                     "non-members = --test records"}
    return audit, subgroups


def utility_plot(rows: list[dict[str, object]], metric: str, title: str, path: Path) -> Path:
    """Grouped bars: per family, the release vs the full real table vs random real subsets."""
    df = pd.DataFrame(rows)
    df = df[df.metric == metric]
    fams = list(dict.fromkeys(df.family))
    sources = list(dict.fromkeys(df.source))
    fig, ax = plt.subplots(figsize=(max(6.5, 1.6 * len(fams) + 2), 4.6))
    w = 0.8 / max(1, len(sources))
    for k, src in enumerate(sources):
        s = df[df.source == src].set_index("family").reindex(fams)
        err = s["std"].astype(float).fillna(0).to_numpy() if "std" in s else None
        ax.bar(np.arange(len(fams)) + (k - (len(sources) - 1) / 2) * w, s.value.astype(float),
               width=w, yerr=err, capsize=3, label=_source_label(src))
    ax.axhline(0.5, color="black", ls=":", lw=1, label="chance (0.5)")
    ax.set_xticks(range(len(fams)), fams, rotation=20, ha="right")
    ax.set_xlabel("model family (trained on the table named in the legend)")
    ax.set_ylabel(bplots.METRIC_LABEL.get(metric, metric))
    ax.set_ylim(0.4, 1.0)
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return bplots.save_figure(fig, path)


def _source_label(src: str) -> str:
    if src.startswith("random_real"):
        return "random real subsets, same size (mean ± sd)"
    return {"synthetic": "release (train on synthetic)",
            "full_real": "full real training table"}.get(src, src)


def audit_plot(audit: dict[str, object], path: Path) -> Path:
    """One bar per attack (AUC with its 95 % interval); copies in the title."""
    attacks = pd.DataFrame(audit["attacks"])  # type: ignore[arg-type]
    frame = pd.DataFrame({"release": attacks.attack.str.replace("_", " "), "attack": "attack AUC",
                          "auc": attacks.auc, "ci_low": attacks.ci_low, "ci_high": attacks.ci_high})
    copies = audit["copies"]  # type: ignore[index]
    title = (f"Membership-inference attacks on the release ({audit['members']} members vs "
             f"{audit['non_members']} non-members)\nexact copies of real rows: "
             f"{copies['exact_copies']}, near copies: {copies['near_copies']}")  # type: ignore[index]
    return bplots.audit_figure(frame, title, path)


def subgroup_plot(rows: list[dict[str, object]], metric: str, path: Path) -> Path | None:
    """Bars per subgroup level: release vs full real table, one panel per family."""
    df = pd.DataFrame(rows)
    if df.empty or not (df.metric == metric).any():
        return None
    df = df[df.metric == metric]
    fams = list(dict.fromkeys(df.family))
    ncol = 1 if len(fams) == 1 else 2
    nrow = math.ceil(len(fams) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(7 * ncol, 3.1 * nrow + 1.2), squeeze=False)
    low = min(0.3, float(df.value.astype(float).min()) - 0.05)
    for ax, fam in zip(axes.flat, fams):
        f = df[df.family == fam]
        labels = list(dict.fromkeys(f.subgroup + "=" + f.level + "\n(n=" + f.n_test.astype(str) + ")"))
        for k, src in enumerate(("synthetic", "full_real")):
            s = f[f.source == src]
            ax.bar(np.arange(len(s)) + (k - 0.5) * 0.4, s.value.astype(float), width=0.4,
                   label=_source_label(src), color=("tab:blue", "tab:orange")[k])
        ax.axhline(0.5, color="black", ls=":", lw=1, label="chance (0.5)")
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylabel(bplots.METRIC_LABEL.get(metric, metric), fontsize=8)
        ax.set_ylim(low, 1.0)
        ax.set_title(f"evaluated with {fam}", fontsize=10)
        ax.set_xlabel("subgroup level (test rows in the level)", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(fams):]:
        ax.axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9)
    fig.suptitle("Utility by subgroup: the release vs the full real table "
                 "(test on the real hold-out)", fontsize=12)
    fig.tight_layout(rect=(0, 0.05 if nrow > 1 else 0.1, 1, 0.96))
    return bplots.save_figure(fig, path)
