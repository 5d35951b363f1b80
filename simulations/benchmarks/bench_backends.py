"""Benchmark: reference vs batched backends, end-to-end ``condense`` and ``simulate`` times.

Three tables, all on bundled datasets (breast_cancer for the classifiers, gbsg2 for Cox):

1. *Function evaluations per second* per family and backend at P directions (2·P perturbed
   sets per round, default P = 64): one condensation round's public half — ``fit_round`` on
   the synthetic set's ``S ± μU_p`` — plus the private half's predictions on a Poisson sample
   (q = 0.25) of the real table, exactly as a site computes them. An evaluation is one fit
   plus its predictions. Also the largest difference between the two backends' predictions
   (the reference at its default stopping rule; see the conformance suite for 1e-4).
2. End-to-end ``condense`` (central engine) wall time and evaluations/s per backend.
2b. The command line as a user runs it (start-up, imports and calibration included):
   ``fedcondense --help`` and ``fedcondense condense`` of heart_disease with the default
   portfolio (logistic_regression + decision_tree, P = 64) for 10 and 100 rounds, wall and
   CPU seconds; and the accountant's calibration, guided search vs the plain bisection.
3. ``simulate`` (K sites through Flower's Ray engine with SecAgg+): median round time split
   into fit / predict / privacy / framework, with each round's fits shared by the simulated
   sites (one site process) and without (one process per CPU, each fitting for itself).

Run::

    .venv/bin/python -m fedcondense.simulations.benchmarks.bench_backends [--directions 64]
        [--families logistic_regression,decision_tree,...] [--rounds 10] [--sites 3]
        [--cli-rounds 10,100] [--skip-condense] [--skip-cli] [--skip-simulate] [--device auto]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table as RichTable  # noqa: E402

from ...protocol.condensation.condenser import (  # noqa: E402
    CondenseConfig,
    initial_synthetic_set,
    plan_privacy,
)
from ...protocol.condensation.site_update import RoundConfig, fit_round, per_record_losses  # noqa: E402
from ...protocol.data.site_table import load_site_table  # noqa: E402
from ...protocol.families import create_family  # noqa: E402
from ...protocol.privacy.dp_mechanism import poisson_sample  # noqa: E402
from ...server.central_run import condense  # noqa: E402
from ..evaluation.datasets import export_dataset  # noqa: E402

DATASET = {"classification": "breast_cancer", "survival": "gbsg2"}


def load(name: str, work: Path) -> tuple[Any, Any, Path, Path]:
    """Schema, validated table, CSV and schema paths of a bundled dataset."""
    from ...protocol.data.schema import Schema

    csv, schema_path = export_dataset(name, work)
    schema = Schema.load(schema_path)
    return schema, load_site_table(csv, schema), csv, schema_path


def round_problem(schema: Any, table: Any, rows: int, seed: int = 0) -> Any:
    """A synthetic set initialised as ``condense`` does (noise-free DP init: timing only)."""
    cfg = CondenseConfig(epsilon=float("inf"), rows=rows, seed=seed)
    return initial_synthetic_set(table, schema, cfg, plan_privacy(cfg), seed,
                                 np.random.default_rng(seed))


def evaluations_per_second(name: str, backend: str, synthetic: Any, table: Any, P: int,
                           repeats: int, device: str, seed: int = 0,
                           warm_up: float = 2.0) -> tuple[float, float, np.ndarray]:
    """Best-of-``repeats`` 2P/(fit + predict) of one round by wall and by CPU (process) time,
    and the predictions. CPU time is what a shared machine's load does not inflate (the
    families run single-threaded on CPU)."""
    fam = create_family(name, backend=backend, device=device)
    idx = poisson_sample(len(table.X), 0.25, np.random.default_rng(seed))

    def one_round() -> Any:
        fits = fit_round(synthetic, {name: fam}, RoundConfig(seed, 1, P, 0.1, 1.0))
        per_record_losses(fam, fits.fitted[name], synthetic, table, idx, 1e-4)
        if fam.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return fits

    # warm-up: imports, kernels, and the heap a long run settles into (the first rounds of a
    # fast backend run up to 1.5x slower while the process's memory grows): one round, or
    # as many as fill ``warm_up`` seconds
    start = time.perf_counter()
    fits = one_round()
    while time.perf_counter() - start < warm_up:
        fits = one_round()
    wall, cpu = np.inf, np.inf
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fits = one_round()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    preds = fam.predict_batch(fits.fitted[name], table.X[idx])
    return 2 * P / wall, 2 * P / max(cpu, 1e-9), preds


def fits_table(families: list[str], P: int, repeats: int, device: str, work: Path,
               console: Console, warm_up: float = 2.0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    table = RichTable(title=f"function evaluations/s at P = {P} (2P = {2 * P} fits + "
                            f"predictions per round, q = 0.25), device={device}")
    for col in ("family", "dataset", "m", "reference /s", "batched /s", "speed-up",
                "speed-up (CPU time)", "max |Δp| vs default ref"):
        table.add_column(col, justify="left" if col in ("family", "dataset") else "right")
    for name in families:
        cls = type(create_family(name, backend="reference", device="cpu"))  # loads the registry
        task = cls.task
        schema, tab, _, _ = load(DATASET[task], work)
        synthetic = round_problem(schema, tab, 40 if task == "survival" else 10)
        ref, ref_cpu, p_ref = evaluations_per_second(name, "reference", synthetic, tab, P,
                                                     repeats, "cpu", warm_up=warm_up)
        row = {"family": name, "dataset": DATASET[task], "m": synthetic.n_rows, "reference": ref}
        if "batched" in cls.backends and "reference" not in cls.torch_backends:
            bat, bat_cpu, p_bat = evaluations_per_second(name, "batched", synthetic, tab, P,
                                                         repeats, device, warm_up=warm_up)
            row.update({"batched": bat, "speedup": bat / ref, "speedup_cpu": bat_cpu / ref_cpu,
                        "maxdiff": float(np.abs(p_bat - p_ref).max())})
        rows.append(row)
        table.add_row(name, row["dataset"], str(row["m"]), f"{ref:.0f}",
                      f"{row['batched']:.0f}" if "batched" in row else "—",
                      f"{row['speedup']:.1f}×" if "speedup" in row else
                      ("same code" if "batched" in cls.backends else "—"),
                      f"{row['speedup_cpu']:.1f}×" if "speedup_cpu" in row else "—",
                      f"{row['maxdiff']:.1e}" if "maxdiff" in row else "—")
    console.print(table)
    return rows


def condense_table(rounds: int, P: int, work: Path, console: Console) -> list[dict[str, Any]]:
    rows = []
    table = RichTable(title=f"condense (central), {rounds} rounds, P = {P}, ε = 1")
    for col in ("dataset", "models", "backend", "wall s", "evaluations/s", "fit s", "framework s"):
        left = col in ("dataset", "models", "backend")
        table.add_column(col, justify="left" if left else "right")
    for task, models in (("classification", ("logistic_regression", "decision_tree")),
                         ("survival", ("cox_ph",))):
        schema, tab, _, _ = load(DATASET[task], work)
        for backend in ("reference", "batched"):
            cfg = CondenseConfig(rows=10 if task == "classification" else 40, models=models,
                                 rounds=rounds, directions=P, seed=0, backend=backend)
            t0 = time.perf_counter()
            res = condense(tab, schema, cfg)
            wall = time.perf_counter() - t0
            work_s = sum(res.timings.values())
            r = {"dataset": DATASET[task], "models": ",".join(models), "backend": backend,
                 "wall": wall, "eps": res.function_evaluations / wall, "fit": res.timings["fit"],
                 "framework": max(0.0, wall - work_s)}
            rows.append(r)
            table.add_row(r["dataset"], r["models"], backend, f"{wall:.2f}", f"{r['eps']:.0f}",
                          f"{r['fit']:.2f}", f"{r['framework']:.2f}")
    console.print(table)
    return rows


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system of the child) seconds of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli_table(rounds: list[int], P: int, work: Path, console: Console) -> list[dict[str, Any]]:
    """``fedcondense --help`` and ``fedcondense condense`` (heart_disease, LR + DT) as
    subprocesses: what a user waits for, start-up included."""
    exe = str(Path(sys.executable).with_name("fedcondense"))
    csv, schema = export_dataset("heart_disease", work)
    table = RichTable(title=f"command line (start-up included), heart_disease, "
                            f"logistic_regression + decision_tree, P = {P}, ε = 1; "
                            f"load {os.getloadavg()[0]:.1f}")
    for col in ("command", "wall s", "CPU s"):
        table.add_column(col, justify="left" if col == "command" else "right")
    rows = []
    cases = [("fedcondense --help", [exe, "--help"])]
    for r in rounds:
        cases.append((f"condense --rounds {r}",
                      [exe, "condense", str(csv), "--schema", str(schema), "--out",
                       str(work / f"cli-{r}"), "--rounds", str(r), "--directions", str(P),
                       "--seed", "0"]))
    for name, cmd in cases:
        wall, cpu = _timed(cmd)
        rows.append({"command": name, "wall": wall, "cpu": cpu})
        table.add_row(name, f"{wall:.2f}", f"{cpu:.2f}")
    console.print(table)
    return rows


def calibration_table(console: Console) -> list[dict[str, Any]]:
    """Seconds (CPU) of the default calibration: guided search vs the plain bisection."""
    from ...protocol.privacy import accounting

    table = RichTable(title="calibration (ε = 1, δ = 1e-5, q = 0.25, init share 0.3), CPU s")
    for col in ("rounds", "plain bisection", "guided (uncached)", "same σ"):
        table.add_column(col, justify="right")
    rows = []
    for T in (10, 100, 300):
        accounting._calibrate.cache_clear()
        c0 = time.process_time()
        new = accounting.calibrate(1.0, 1e-5, 0.25, T, 0.3)
        c1 = time.process_time()
        init = [{"type": "gaussian", "sigma": new.sigma_init, "count": 1}]
        plain = accounting.solve_sigma(lambda s: accounting.epsilon_spent(
            init + [{"type": "sampled_gaussian", "q": 0.25, "sigma": s, "count": T}], 1e-5), 1.0)
        c2 = time.process_time()
        rows.append({"rounds": T, "plain": c2 - c1, "guided": c1 - c0,
                     "same": abs(plain - new.sigma) <= 1e-6})
        table.add_row(str(T), f"{c2 - c1:.2f}", f"{c1 - c0:.2f}", str(rows[-1]["same"]))
    console.print(table)
    return rows


def simulate_table(rounds: int, P: int, n_sites: int, work: Path,
                   console: Console) -> list[dict[str, Any]]:
    import pandas as pd

    from ..evaluation.site_splits import split_sites
    from ..runtime.federated_condense import run_federated

    rows = []
    keys = ("fit_s", "predict_s", "privacy_s", "site_s", "framework_s", "wall_s")
    table = RichTable(title=f"simulate: {n_sites} sites, Ray engine, SecAgg+, {rounds} rounds, "
                            f"P = {P} — median round [s] (first round excluded)")
    for col in ("dataset", "models", "fits", "fits/round", *[k[:-2] for k in keys],
                "site share", "total wall s"):
        table.add_column(col, justify="left" if col in ("dataset", "models", "fits") else "right")
    cases = (("classification", "logistic_regression,decision_tree"), ("survival", "cox_ph"))
    for task, models in cases:
        schema, _, csv, schema_path = load(DATASET[task], work)
        files = []
        for i, part in enumerate(split_sites(pd.read_csv(csv), schema, n_sites, seed=0)):
            files.append(work / f"{DATASET[task]}-site{i}.csv")
            part.to_csv(files[-1], index=False)
        for share in (True, False):
            cfg = CondenseConfig(rows=10 if task == "classification" else 40,
                                 models=tuple(models.split(",")), rounds=rounds, directions=P,
                                 seed=0)
            t0 = time.perf_counter()
            res = run_federated(files, schema_path, cfg, site_processes=1 if share else None)
            wall = time.perf_counter() - t0
            splits = [h["time_split_s"] for h in res.orchestrator.history[1:]
                      if h.get("time_split_s")]
            med = {k: statistics.median(s[k] for s in splits) for k in keys}
            fits = statistics.median(s["fits"] for s in splits)
            r = {"dataset": DATASET[task], "models": models, "shared": share, **med,
                 "fits_per_round": fits, "total_wall": wall}
            rows.append(r)
            table.add_row(DATASET[task], models, "shared" if share else "per process",
                          f"{fits:.0f}", *(f"{med[k]:.3f}" for k in keys),
                          f"{med['site_s'] / med['wall_s']:.0%}", f"{wall:.1f}")
    console.print(table)
    return rows


def main(argv: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--directions", type=int, default=64, help="P (2P perturbed sets per round)")
    ap.add_argument("--families", default="logistic_regression,decision_tree,random_forest,"
                    "gradient_boosting,knn,mlp,cox_ph,random_survival_forest")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warm-up", type=float, default=2.0,
                    help="seconds of untimed rounds before the timed ones (at least one round)")
    ap.add_argument("--rounds", type=int, default=10, help="rounds of condense and simulate")
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--device", default="auto", help="device of the batched backends")
    ap.add_argument("--cli-rounds", default="10,100", help="rounds of the command-line runs")
    ap.add_argument("--skip-condense", action="store_true")
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--skip-simulate", action="store_true")
    args = ap.parse_args(argv)
    flwr_log = logging.getLogger("flwr")  # keep Flower's per-message chatter out of the tables
    flwr_log.setLevel(logging.ERROR)
    flwr_log.propagate = False
    console = Console(width=max(Console().width, 140))
    out: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        out["fits"] = fits_table(args.families.split(","), args.directions, args.repeats,
                                 args.device, work, console, args.warm_up)
        if not args.skip_condense:
            out["condense"] = condense_table(args.rounds, args.directions, work, console)
        if not args.skip_cli:
            out["calibration"] = calibration_table(console)
            out["cli"] = cli_table([int(r) for r in args.cli_rounds.split(",")],
                                   args.directions, work, console)
        if not args.skip_simulate:
            out["simulate"] = simulate_table(args.rounds, args.directions, args.sites, work,
                                             console)
    return out


if __name__ == "__main__":
    main()
