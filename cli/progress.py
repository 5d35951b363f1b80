"""A rich progress bar over rounds, usable as a ``progress(round, info)`` callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def round_progress(total: int, label: str, disable: bool = False) -> Iterator[Callable[[int, dict[str, float]], None]]:
    """Yield a callback that advances a bar to round ``r`` (and shows the last round's time)."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=disable, transient=False) as bar:
        task = bar.add_task(label, total=total, info="")

        def advance(r: int, info: dict[str, float]) -> None:
            secs = info.get("seconds")
            bar.update(task, completed=r, info=f"{secs:.2f} s/round" if secs is not None else "")

        yield advance
