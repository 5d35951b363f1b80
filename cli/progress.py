"""A rich progress bar over rounds, usable as a ``progress(round, info)`` callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def round_progress(total: int, label: str, disable: bool = False
                   ) -> Iterator[Callable[[int, dict[str, float]], None]]:
    """Yield a callback that advances a bar to round ``r`` (and shows the last round's time)."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=disable, transient=False) as bar:
        task = bar.add_task(label, total=total, info="")

        def advance(r: int, info: dict[str, float]) -> None:
            secs = info.get("seconds")
            bar.update(task, completed=r, info=f"{secs:.2f} s/round" if secs is not None else "")

        yield advance


@contextmanager
def job_progress(total: int, done: int, label: str,
                 disable: bool = False) -> Iterator[Callable[[object, list[dict[str, object]]], None]]:
    """Yield a callback ``advance(job, rows)`` that moves a bar over benchmark jobs and shows
    the job just finished (``done`` jobs were finished before this session)."""
    from ..simulations.benchmarks.benchmark_scoring import summary_line

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=disable, transient=False) as bar:
        task = bar.add_task(label, total=total, completed=done, info="")

        def advance(job: object, rows: list[dict[str, object]]) -> None:
            status = str(rows[0].get("status", "")) if rows else ""
            info = status if status.startswith("failed") else summary_line(rows)
            bar.update(task, advance=1, info=f"{getattr(job, 'label', job)}: {info}")

        yield advance
