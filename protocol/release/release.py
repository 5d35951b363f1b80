"""Writing a run's output folder: ``synthetic.csv``, ``privacy.json``, ``run.json``.

Everything is computed before anything is written; each file is written atomically and
``synthetic.csv`` last, so a run that fails leaves no ``synthetic.csv`` behind (and never a
half-written one). A stale release from an earlier run in the same folder is removed before
the new run starts (:func:`prepare_output_dir`).
"""

from __future__ import annotations

import io
import json
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.atomic_file import atomic_write_text
from ..errors import FedcondenseError

RELEASE_FILES = ("synthetic.csv", "privacy.json", "run.json")
_PACKAGES = ("fedcondense", "numpy", "scikit-learn", "scikit-survival", "lifelines", "torch",
             "flwr", "dp-accounting", "pandas")


def prepare_output_dir(out: str | Path, inputs: list[Path]) -> Path:
    """Create ``out`` (refusing to write over an input file) and drop a stale release."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise FedcondenseError(f"--out {path}: exists and is not a folder; choose a folder path.")
    resolved = {p.resolve() for p in inputs}
    for name in RELEASE_FILES:
        if (path / name).resolve() in resolved:
            raise FedcondenseError(
                f"--out {path}: would overwrite input file {name}; choose another folder."
            )
    path.mkdir(parents=True, exist_ok=True)
    stale = path / "synthetic.csv"
    if stale.exists():
        stale.unlink()
    return path


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _json_safe(value.item())
    return value


def dumps(obj: Any) -> str:
    return json.dumps(_json_safe(obj), indent=2) + "\n"


def write_release(out: Path, table: pd.DataFrame, privacy: dict[str, Any], run: dict[str, Any]) -> None:
    """Write the three files; ``synthetic.csv`` last."""
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    csv_text = buf.getvalue()
    privacy_text = dumps(privacy)
    run_text = dumps(run)
    atomic_write_text(out / "privacy.json", privacy_text)
    atomic_write_text(out / "run.json", run_text)
    atomic_write_text(out / "synthetic.csv", csv_text)
