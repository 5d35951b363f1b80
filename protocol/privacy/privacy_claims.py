"""What every ``privacy.json`` must say about the claim it makes, in one place.

A release's (ε, δ) is only meaningful with its assumptions. :func:`release_claims` gives the
fields every run's ``privacy.json`` carries, whoever builds the rest of it (``condense``,
``simulate``, the deployed coordinator):

``private``
    ``false`` for ``--epsilon inf`` **and** for every run whose noise came from a seed:
    anyone holding the seed (it is in ``run.json``) can regenerate and subtract the noise.
``adjacency``
    The neighbouring relation every ε figure uses: add/remove one record. (Under
    replace-one adjacency the same mechanism's sensitivity doubles, 2C.)
``bounds``
    Whether the schema's bounds/levels/horizons were declared public or inferred from data
    (``schema infer``): bounds read from data are not covered by any ε.
``noise_source``
    The sites' own secure randomness, or a seed (reproducible, not for release).
``warnings``
    One line per reason the claim is weaker than it looks.

:func:`public_rounds` removes from a private run's per-round rows the site-side timings that
track the private Poisson batch size (predict, privacy seconds): nothing the accountant does
not cover is written next to a release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ADJACENCY = "add/remove one record"
SITE_TIMING_KEYS = ("predict_s", "privacy_s", "site_s", "site_compute_s", "framework_s",
                    "overhead_s", "site_compute_share")
"""Per-round keys whose values grow with (or are derived from) a site's private Poisson batch
size; the coordinator's own wall clock per round stays."""


def bounds_claim(schema: Any) -> str:
    """``"declared public"`` or ``"inferred from data"`` from the schema's provenance."""
    source = getattr(schema, "bounds_source", "declared")
    return "inferred from data" if source == "inferred" else "declared public"


def release_claims(schema: Any, *, finite_epsilon: bool, seeded: bool) -> dict[str, Any]:
    """The claim fields of ``privacy.json`` (see the module docstring).

    Parameters
    ----------
    schema : Schema
        The consortium schema (its ``bounds_source`` says where bounds came from).
    finite_epsilon : bool
        False for ``--epsilon inf`` (no noise at all).
    seeded : bool
        True when a seed fixed the noise (``--seed``).
    """
    bounds = bounds_claim(schema)
    warnings: list[str] = []
    if not finite_epsilon:
        warnings.append("this release is NOT differentially private: no noise was added "
                        "(--epsilon inf).")
    elif seeded:
        warnings.append("this release is NOT private: its noise came from the seed recorded in "
                        "run.json, so anyone with it can remove the noise (reproducible study).")
    if bounds != "declared public":
        warnings.append("the schema's bounds were inferred from data (schema infer): they are "
                        "not covered by ε; replace them with public bounds before a release.")
    return {
        "private": finite_epsilon and not seeded,
        "adjacency": ADJACENCY,
        "bounds": bounds,
        "noise_source": ("none (ε = inf)" if not finite_epsilon
                         else "seeded (reproducible, not for release)" if seeded
                         else "each data holder's own secure random source"),
        "warnings": warnings,
    }


def public_split(split: Mapping[str, Any], private: bool) -> dict[str, Any]:
    """A time split for ``run.json``: site-side parts dropped from a private run."""
    return {k: v for k, v in split.items() if not private or k not in SITE_TIMING_KEYS}


def public_rounds(rows: Sequence[Mapping[str, Any]], private: bool) -> list[dict[str, Any]]:
    """Per-round rows for ``run.json``: site-side timings dropped from a private run."""
    if not private:
        return [dict(r) for r in rows]
    out = []
    for row in rows:
        clean = public_split(row, private)
        split = row.get("time_split_s")
        if isinstance(split, Mapping):
            clean["time_split_s"] = public_split(split, private)
        out.append(clean)
    return out
