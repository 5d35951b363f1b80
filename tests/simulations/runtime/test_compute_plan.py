"""The run's compute plan: backends, device and threads chosen once (issue 17)."""

import pytest

from fedcondense.client.site_handler import site_families
from fedcondense.protocol.errors import FedcondenseError
from fedcondense.protocol.families import FAMILIES, families_for_task
from fedcondense.simulations.runtime.compute_plan import (
    apply_threads,
    current_threads,
    default_threads,
    plan_compute,
)


def _lacking(task: str) -> tuple[str, str] | None:
    """A (family, backend) of ``task`` the registry does not offer but another family has."""
    names = families_for_task(task)
    every = {b for n in names for b in FAMILIES[n].backends}
    for n in names:
        for b in sorted(every - set(FAMILIES[n].backends)):
            return n, b
    return None


def test_auto_resolves_each_family_by_the_registry():
    models = tuple(families_for_task("classification"))
    plan = plan_compute(models, "auto", device="cpu", threads=3)
    for m in models:
        want = "batched" if "batched" in FAMILIES[m].backends else "reference"
        assert plan.backend_by_family[m] == want
    assert plan.as_dict() == {"backend_by_family": dict(plan.backend_by_family),
                              "device": "cpu", "threads": 3}
    assert plan_compute(("decision_tree",), "reference").device == "cpu"


def test_a_backend_a_family_lacks_is_one_usage_line_naming_every_familys_backends():
    combo = _lacking("classification") or _lacking("survival")
    if combo is None:
        pytest.skip("every family has every backend")
    family, backend = combo
    other = next(n for n in FAMILIES if n != family and FAMILIES[n].task == FAMILIES[family].task)
    with pytest.raises(FedcondenseError) as err:
        plan_compute((other, family), backend)
    line = str(err.value)
    assert "\n" not in line and f"{family} has no {backend} backend" in line
    for m in (other, family):
        assert f"{m}: {', '.join(FAMILIES[m].backends)}" in line
    with pytest.raises(FedcondenseError, match="'gpu' is not a backend"):
        plan_compute((family,), "gpu")


def test_threads_default_to_one_unless_omp_num_threads_says_otherwise():
    assert default_threads({}) == 1
    assert default_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert default_threads({"OMP_NUM_THREADS": "0"}) == 1
    assert default_threads({"OMP_NUM_THREADS": "many"}) == 1
    with pytest.raises(FedcondenseError):
        plan_compute(("decision_tree",), threads=0)


def test_apply_threads_sets_torch_in_this_process(monkeypatch):
    import os

    import torch

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        # apply_threads writes these; the test gives them back as they were (a leaked
        # OMP_NUM_THREADS=2 made later plans in the same session choose 2 threads)
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    before = torch.get_num_threads()
    try:
        apply_threads(2)
        assert torch.get_num_threads() == 2 and current_threads() == 2
        apply_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        apply_threads(before)


def test_site_families_are_built_once_and_library_backends_stay_on_the_cpu():
    a = site_families(("logistic_regression", "decision_tree"), "auto", "cpu")
    assert a is site_families(("logistic_regression", "decision_tree"), "auto", "cpu")
    assert {f.device for f in a.values()} == {"cpu"}
