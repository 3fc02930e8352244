"""Round two, class 8: long preparation shows progress and saves as it goes: a kill loses at most one chunk of
descriptions (ST-VLM's correlation images are drawn inside the training loop, under its progress bar)."""

import pytest

from stcast.data import descriptions as D


def test_descriptions_are_saved_as_they_are_written_and_show_progress(los_small, tmp_path, monkeypatch, capsys,
                                                                      counting_writer):
    class DyingWriter(counting_writer):
        """Killed after `lives` calls: what it wrote before stays in the cache."""

        def __init__(self, lives, key="counting-v1"):
            super().__init__(key)
            self.lives = lives

        def write(self, questions):
            if self.lives == 0:
                raise KeyboardInterrupt
            self.lives -= 1
            return super().write(questions)

    monkeypatch.setenv("STCAST_CACHE", str(tmp_path))
    stats = D.node_statistics(los_small.values[:288, :, 0], los_small.observed(slice(0, 288))[:, :, 0],
                              los_small.timestamps[:288], los_small.meta)
    questions = D.node_questions(stats, "los-loop", "mph")  # 20 texts: chunks of 8, 8, 4
    with pytest.raises(KeyboardInterrupt):
        D.describe(questions, DyingWriter(lives=2))  # killed in the third chunk
    assert "descriptions: 16/20 written" in capsys.readouterr().err
    w = counting_writer()
    texts, rep = D.describe(questions, w)
    assert rep.cached == 16 and rep.generated == 4 and w.calls == 4 and len(texts) == 20
