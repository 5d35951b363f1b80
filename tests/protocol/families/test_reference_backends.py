"""The reference backend's shortcuts give exactly what the plain library calls give."""

import warnings

import numpy as np
import pandas as pd
import torch

from fedcondense.protocol.families import create_family
from fedcondense.protocol.families.base import FitTargets, single_threaded


def test_cox_reference_equals_plain_lifelines():
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    x[:, 2] = 0.5  # constant: dropped before fitting
    t = np.round(rng.exponential(8.0 * np.exp(-x[:, 0]))) + 1.0  # ties
    e = (rng.random(40) < 0.7).astype(int)
    xr = rng.normal(size=(50, 4))
    horizons = (0.1, 3.0, 7.5, 1e4)
    fam = create_family("cox_ph", backend="reference")
    ours = fam.predict_one(fam.fit_one(x, FitTargets(event=e, horizons=horizons), t), xr)

    keep = [0, 1, 3]
    mu, sd = x[:, keep].mean(0), x[:, keep].std(0)
    cols = [f"c{i}" for i in keep]
    df = pd.DataFrame((x[:, keep] - mu) / sd, columns=cols).assign(T=t, E=e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cph = CoxPHFitter(penalizer=0.1).fit(df, "T", "E")
        plain = cph.predict_survival_function(pd.DataFrame((xr[:, keep] - mu) / sd, columns=cols),
                                              times=horizons).to_numpy().T
    assert np.abs(ours - plain).max() < 1e-12


def test_mlp_hand_written_adam_equals_torch_autograd_adam():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (30, 5))
    y = rng.integers(0, 3, 30)
    xr = rng.uniform(-1, 1, (40, 5))
    fam = create_family("mlp", steps=60)
    ours = fam.predict_one(fam.fit_one(x, FitTargets(labels=y, n_classes=3)), xr)

    xs = torch.tensor(x, dtype=torch.float32)
    mu, sd = xs.mean(0), xs.std(0, unbiased=False)
    gen = torch.Generator().manual_seed(0)
    w1 = ((torch.rand(5, 32, generator=gen) * 2 - 1) / 5**0.5).requires_grad_()
    w2 = ((torch.rand(32, 3, generator=gen) * 2 - 1) / 32**0.5).requires_grad_()
    b1, b2 = torch.zeros(32, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([w1, b1, w2, b2], lr=0.01, weight_decay=1e-3)
    for _ in range(60):
        opt.zero_grad()
        logits = torch.relu((xs - mu) / sd @ w1 + b1) @ w2 + b2
        torch.nn.functional.cross_entropy(logits, torch.tensor(y)).backward()
        opt.step()
    with torch.no_grad():
        xq = (torch.tensor(xr, dtype=torch.float32) - mu) / sd
        plain = torch.softmax(torch.relu(xq @ w1 + b1) @ w2 + b2, -1).numpy()
    assert np.abs(ours - plain).max() < 1e-4


def test_single_threaded_restores_the_pools():
    from threadpoolctl import threadpool_info

    before = [p["num_threads"] for p in threadpool_info()]
    with single_threaded():
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert [p["num_threads"] for p in threadpool_info()] == before
    threads = torch.get_num_threads()
    fam = create_family("mlp", steps=5)
    fam.fit_one(np.zeros((4, 2)), FitTargets(labels=np.array([0, 1, 0, 1]), n_classes=2))
    assert torch.get_num_threads() == threads
