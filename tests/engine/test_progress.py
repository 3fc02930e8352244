"""Progress and tables: rich on a terminal, plain lines elsewhere."""

import io

from stcast.bench.tables import print_table
from stcast.engine.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


ROW = {"epoch": 1, "train_loss": 0.5, "val_mae": 3.25, "seconds": 1.0}


def test_a_terminal_gets_a_progress_bar_with_loss_and_validation_mae():
    out = Terminal()
    with Progress("stid", 2, stream=out) as p:
        p.start_epoch(0, 4)
        for _ in range(4):
            p.step(0.75)
        p.end_epoch(ROW)
    text = out.getvalue()
    assert "stid epoch 1/2" in text and "4/4" in text and "loss 0.7500" in text
    assert "val MAE 3.2500" in text


def test_a_log_gets_one_plain_line_per_epoch_and_nothing_when_disabled():
    out = io.StringIO()
    with Progress("stid", 2, stream=out) as p:
        p.start_epoch(0, 4)
        p.step(0.75)
        p.end_epoch(ROW)
    assert out.getvalue() == "  stid epoch 1: train 0.5000 val MAE 3.2500 (1.0s)\n"
    quiet = io.StringIO()
    with Progress("stid", 2, enabled=False, stream=quiet) as p:
        p.start_epoch(0, 4)
        p.end_epoch(ROW)
    assert quiet.getvalue() == ""


def test_tables_are_plain_aligned_text_on_a_terminal_and_in_a_pipe():
    rows = [{"dataset": "los-loop", "model": "stid", "mae": 3.5}]
    term, pipe = Terminal(), io.StringIO()
    print_table(rows, ["dataset", "model", "mae"], term)
    print_table(rows, ["dataset", "model", "mae"], pipe)
    assert term.getvalue() == pipe.getvalue()
    lines = pipe.getvalue().splitlines()
    assert lines[0].split() == ["dataset", "model", "mae"] and set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["los-loop", "stid", "3.500"]
