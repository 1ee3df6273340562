"""Terminal output: progress bars with live score, ETA and LM calls, and result tables; where
stderr is not a terminal (CI, nohup), a plain status line every `plain_every` seconds instead.

`Reporter(quiet=True)` prints nothing while working (for scripts); the CLI then prints a
single result line. Everything goes to stderr except result tables and that line.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn
from rich.table import Table


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Reporter:
    # Not a terminal (CI, nohup, a pipe): rich draws nothing live there, so long work prints a plain
    # status line at most this often instead of staying silent until it ends.
    plain_every = 30.0

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        # Scripts and CI are not terminals: use a wide fixed width instead of 80 columns.
        self.out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
        self.err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)

    def _plain(self) -> bool:
        """Plain lines: stderr is neither a terminal nor a notebook (rich draws live in both)."""
        return not (self.err.is_terminal or self.err.is_jupyter)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {escape(message)}")

    @contextlib.contextmanager
    def phase(self, title: str, lm_calls: Callable[[], int] | None) -> Iterator[Callable[[str], None]]:
        """A spinner for work without a known length (compiling), showing LM calls so far (if it makes
        any); yields a function that sets a status line beside it (a training step, its loss and ETA)."""
        if self.quiet:
            yield lambda _: None
            return
        if self._plain():
            with self._plain_phase(title, lm_calls) as status:
                yield status
            return
        calls_column = TextColumn("{task.fields[calls]} LM calls" if lm_calls is not None else "")
        lm_calls = lm_calls or (lambda: 0)
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), calls_column,
                            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=self.err,
                            transient=False)
        task = progress.add_task(title, total=None, calls=0, status="")
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(0.5):
                progress.update(task, calls=lm_calls())

        thread = threading.Thread(target=poll, daemon=True)
        with progress:
            thread.start()
            try:
                yield lambda text: progress.update(task, status=text)
            finally:
                stop.set()
                thread.join()
                progress.update(task, calls=lm_calls(), total=1, completed=1)

    @contextlib.contextmanager
    def progress(self, title: str, total: int) -> Iterator[Callable[[int, float, int], None]]:
        """A bar for evaluation; the callback takes (done, mean score, LM calls)."""
        if self.quiet:
            yield lambda *_: None
            return
        if self._plain():
            yield self._plain_progress(title, total)
            return
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("score {task.fields[score]:.3f}"), TextColumn("{task.fields[calls]} LM calls"),
                            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=self.err)
        task = progress.add_task(title, total=total, score=0.0, calls=0)
        last = [0.0]

        def update(done: int, score: float, calls: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.1 or done == total:
                last[0] = now
                progress.update(task, completed=done, score=score, calls=calls)

        with progress:
            yield update

    @contextlib.contextmanager
    def _plain_phase(self, title: str, lm_calls: Callable[[], int] | None) -> Iterator[Callable[[str], None]]:
        start, status, stop = time.monotonic(), [""], threading.Event()

        def line() -> str:
            calls = f"{lm_calls()} LM calls" if lm_calls is not None else ""
            return " · ".join(p for p in (title, calls, status[0], _clock(time.monotonic() - start)) if p)

        def tick() -> None:
            while not stop.wait(self.plain_every):
                self.err.print(line(), markup=False, highlight=False, soft_wrap=True)

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield lambda text: status.__setitem__(0, text)
        finally:
            stop.set()
            thread.join()
        self.err.print(line() + " · done", markup=False, highlight=False, soft_wrap=True)

    def _plain_progress(self, title: str, total: int) -> Callable[[int, float, int], None]:
        start = time.monotonic()
        last = [start]

        def update(done: int, score: float, calls: int) -> None:
            now = time.monotonic()
            if now - last[0] >= self.plain_every or done == total:
                last[0] = now
                elapsed = now - start
                eta = f" · eta {_clock(elapsed / done * (total - done))}" if 0 < done < total else ""
                text = f"{title} {done}/{total} · score {score:.3f} · {calls} LM calls · {_clock(elapsed)}{eta}"
                self.err.print(text, markup=False, highlight=False, soft_wrap=True)

        return update

    def table(self, title: str, columns: list[str], rows: list[list[str]], caption: str = "") -> None:
        if self.quiet:
            return
        table = Table(title=escape(title), caption=escape(caption) if caption else None, title_justify="left")
        for i, column in enumerate(columns):
            table.add_column(column, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*(escape(str(cell)) for cell in row))  # data, not markup
        self.out.print(table)

    def line(self, text: str) -> None:
        self.out.print(text, soft_wrap=True, markup=False, highlight=False)
