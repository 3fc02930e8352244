"""Training progress on stderr: a rich progress bar (steps, loss, last val MAE, ETA) on an interactive terminal,
one plain line per epoch otherwise (logs, CI, pipes). Rank 0 only."""

from __future__ import annotations

import sys


class Progress:
    def __init__(self, name: str, epochs: int, enabled: bool = True, stream=None):
        self.name, self.epochs = name, epochs
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.live = enabled and self.stream.isatty()
        self._bar = self._task = None
        self.val = float("nan")

    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("loss {task.fields[loss]:.4f} val MAE {task.fields[val]:.4f}"),
                                     TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=Console(file=self.stream), transient=False)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def start_epoch(self, epoch: int, steps: int) -> None:
        if self._bar is not None:
            desc = f"{self.name} epoch {epoch + 1}/{self.epochs}"
            if self._task is not None:
                self._bar.remove_task(self._task)
            self._task = self._bar.add_task(desc, total=steps, loss=float("nan"), val=self.val)

    def step(self, loss: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, loss=loss)

    def end_epoch(self, row: dict) -> None:
        self.val = row["val_mae"]
        if self._bar is not None:
            self._bar.update(self._task, val=self.val)
            self._bar.console.print(f"  {self.name} epoch {row['epoch']}: train {row['train_loss']:.4f} "
                                    f"val MAE {self.val:.4f} ({row['seconds']:.1f}s)", highlight=False)
        elif self.enabled:
            print(f"  {self.name} epoch {row['epoch']}: train {row['train_loss']:.4f} val MAE {self.val:.4f} "
                  f"({row['seconds']:.1f}s)", file=self.stream, flush=True)
