"""Checkpoints: the whole optimisation state in one file, written atomically.

A checkpoint holds the synthetic set (free coordinates and fixed targets), the Adam moments
and step count, the round reached, the run seed, the private noise generator's state and a
JSON blob of metadata (configuration, schema hash, per-site spend). Restoring it and
continuing gives bit-for-bit the same result as an uninterrupted run.

The file is a NumPy ``.npz`` archive (no pickles: ``allow_pickle=False`` on load).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..condensation.optimizer import Adam
from ..condensation.synthetic_set import SyntheticSet
from ..data.atomic_file import atomic_write_bytes
from ..data.schema import Schema
from ..errors import FedcondenseError

CHECKPOINT_FORMAT = "fedcondense-checkpoint/1"


@dataclass
class Checkpoint:
    """State after ``round_index`` completed rounds."""

    synthetic: SyntheticSet
    optimizer: Adam
    round_index: int
    run_seed: int
    rng_state: dict[str, Any] | None
    meta: dict[str, Any]

    def save(self, path: str | Path) -> None:
        p = Path(path)
        arrays = {f"syn_{k}": v for k, v in self.synthetic.to_arrays().items()}
        arrays.update(self.optimizer.state_dict())
        header = {
            "format": CHECKPOINT_FORMAT,
            "schema_hash": self.synthetic.schema.hash(),
            "round_index": self.round_index,
            "run_seed": self.run_seed,
            "rng_state": self.rng_state,
            "meta": self.meta,
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub: **kwds vs allow_pickle
        atomic_write_bytes(p, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, schema: Schema) -> "Checkpoint":
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            header = json.loads(arrays.pop("header").tobytes().decode("utf-8"))
        except (OSError, ValueError, KeyError) as exc:
            raise FedcondenseError(f"{p}: not a readable fedcondense checkpoint ({exc}).") from None
        if header.get("format") != CHECKPOINT_FORMAT:
            raise FedcondenseError(f"{p}: unsupported checkpoint format {header.get('format')!r}.")
        if header["schema_hash"] != schema.hash():
            raise FedcondenseError(
                f"{p}: checkpoint was made with schema {header['schema_hash'][:12]}…, "
                f"not {schema.hash()[:12]}…; resume with the same schema file."
            )
        syn = SyntheticSet.from_arrays(
            schema, {"Z": arrays["syn_Z"], "targets": arrays["syn_targets"]}
        )
        opt = Adam.from_state({k: v for k, v in arrays.items() if k.startswith("adam_")})
        return cls(syn, opt, int(header["round_index"]), int(header["run_seed"]),
                   header["rng_state"], header["meta"])


def restore_generator(state: dict[str, Any]) -> np.random.Generator:
    """A PCG64 generator positioned exactly where ``state`` was captured."""
    bitgen = np.random.PCG64()
    bitgen.state = state  # type: ignore[assignment]  # numpy types it as a TypedDict
    return np.random.Generator(bitgen)
