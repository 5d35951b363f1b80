"""Who wins each (dataset, family, ε) cell, and the utility targets, read off results rows."""

from __future__ import annotations

import pandas as pd
import pytest

from fedcondense.simulations.benchmarks.benchmark_verdict import (
    cells,
    side_by_side,
    targets,
    targets_rule,
)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    """(dataset, method, trained_with, epsilon, seed, family, score, release_rows) rows."""
    return pd.DataFrame(rows, columns=["dataset", "method", "trained_with", "epsilon", "seed",
                                       "eval_family", "score", "release_rows"])


def _table(dataset: str, n_train: int, condensed: dict[str, list[float]],
           peers: dict[str, dict[str, float]], full: float = 0.80) -> list[tuple]:
    rows = [(dataset, "full_real", "", "", 0, f, full, n_train) for f in condensed]
    rows += [(dataset, "random_subset", "", "", s, f, 0.6, 20)
             for f in condensed for s in range(2)]
    rows += [(dataset, "condensed", "portfolio", "1", s, f, v, 20)
             for f, vals in condensed.items() for s, v in enumerate(vals)]
    rows += [(dataset, "condensed", "lr", "1", 0, f, 0.99, 20) for f in condensed]  # not portfolio
    rows += [(dataset, peer, "", "1", s, f, v, n_train)
             for peer, by_fam in peers.items() for f, v in by_fam.items() for s in range(3)]
    return rows


def test_each_cell_names_the_best_dp_release():
    d = _frame(_table("small", 300, {"lr": [0.80, 0.84], "dt": [0.60, 0.64]},
                      {"dp_gaussian": {"lr": 0.70, "dt": 0.70}, "mst": {"lr": 0.82, "dt": 0.50}}))
    c = cells(d).set_index("family")
    assert c.loc["lr", "condensed_mean"] == pytest.approx(0.82)
    assert c.loc["lr", "condensed_n"] == 2  # the single-family release is not the portfolio's
    assert c.loc["lr", "best_peer"] == "mst" and bool(c.loc["lr", "condensed_wins"])  # tie: wins
    assert c.loc["dt", "best_peer"] == "dp_gaussian" and not c.loc["dt", "condensed_wins"]
    header, rows = side_by_side(cells(d), "small")
    assert header[2:5] == ["full", "random subset", "condensed"]
    table = "\n".join("| " + " | ".join(r) + " |" for r in rows)
    assert "| lr | 1 | 0.800 | 0.600 ± 0.000 | 0.820 ± 0.028 | 0.700 ± 0.000 | 0.820 ± 0.000 | – " \
           "| **condensed** |" in table
    assert "| dt | 1 |" in table and table.rstrip().endswith("| dp_gaussian |")


def test_the_rule_in_words_names_the_checked_thresholds():
    assert targets_rule() == (
        "Large tables (≥ 1,400 training rows, i.e. ≥ 2,000 rows before the 70/30 split): "
        "condensed ≥ every DP peer in every family, ≥ 92 % of the full-data score on average, "
        "seed sd ≤ 0.02. Small tables: condensed ≥ the best DP peer in ≥ 75 % of cells.")


def test_small_tables_need_three_wins_in_four_cells():
    d = _frame(_table("a", 300, {"lr": [0.8, 0.8], "dt": [0.6, 0.6]},
                      {"dp_gaussian": {"lr": 0.7, "dt": 0.7}})
               + _table("b", 200, {"lr": [0.8, 0.8], "dt": [0.8, 0.8]},
                        {"dp_gaussian": {"lr": 0.7, "dt": 0.7}}))
    lines = targets(cells(d))
    assert "a (small, 300 training rows)" in lines[0] and "1/2 families" in lines[0]
    assert lines[0].endswith("**not met**.")
    assert lines[1].endswith("**met**.")
    assert "3/4 cells — **met**" in lines[2]


@pytest.mark.parametrize("condensed, full, verdict", [
    ({"lr": [0.78, 0.79, 0.78], "dt": [0.74, 0.75, 0.75]}, 0.80, "met"),
    ({"lr": [0.78, 0.79, 0.78], "dt": [0.70, 0.75, 0.78]}, 0.80, "not met"),  # dt sd 0.04
    ({"lr": [0.70, 0.70, 0.70], "dt": [0.70, 0.70, 0.70]}, 0.80, "not met"),  # 87.5 % of full
])
def test_large_tables_need_every_family_the_share_and_a_small_sd(condensed, full, verdict):
    d = _frame(_table("big", 6000, condensed, {"mst": {"lr": 0.65, "dt": 0.65}}, full=full))
    (line,) = targets(cells(d))
    assert "big (large, 6000 training rows)" in line and "3 seeds" in line
    assert line.endswith(f"**{verdict}**.")


def test_a_peer_that_wins_one_family_fails_a_large_table():
    d = _frame(_table("big", 6000, {"lr": [0.78] * 3, "dt": [0.75] * 3},
                      {"aim": {"lr": 0.79, "dt": 0.60}}))
    (line,) = targets(cells(d))
    assert "in 1/2 families" in line and line.endswith("**not met**.")


def test_no_peer_no_verdict():
    d = _frame(_table("small", 300, {"lr": [0.8, 0.8]}, {}))
    assert targets(cells(d)) == ["- small, ε=1: no DP peer ran, no verdict."]
