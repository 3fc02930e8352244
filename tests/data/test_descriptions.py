"""LLM-TS Net's text descriptions: statistics against per-node references, window kinds, the disk cache."""

import numpy as np
import pytest
import torch

from stcast.data import descriptions as D


def test_the_description_cache_is_invalidated_when_data_or_prompt_change(los_small, tmp_path, monkeypatch,
                                                                       counting_writer):
    monkeypatch.setenv("STCAST_CACHE", str(tmp_path))
    T = 288
    vals, obs = los_small.values[:T, :, 0], los_small.observed(slice(0, T))[:, :, 0]

    def questions(values, dataset="los-loop"):
        stats = D.node_statistics(values, obs, los_small.timestamps[:T], los_small.meta)
        return D.node_questions(stats, dataset, "mph")

    make = counting_writer
    w = make()
    first, rep = D.describe(questions(vals), w)
    assert rep.generated == 20 and w.calls == 20
    again, rep = D.describe(questions(vals), w)
    assert again == first and rep.cached == 20 and w.calls == 20  # served from disk
    changed = vals.copy()
    changed[:, 3] += 5.0  # other data for one sensor: its statistics, so its prompt, differ
    _, rep = D.describe(questions(changed), w)
    assert rep.generated == 1 and w.calls == 21
    _, rep = D.describe(questions(vals, dataset="other wording"), w)  # another prompt: every key new
    assert rep.generated == 20
    _, rep = D.describe(questions(vals), make("another-writer"))  # another writer: its own file
    assert rep.generated == 20
    for f in (tmp_path / "descriptions").glob("*.json"):
        f.write_text("{not json")
    with pytest.warns(UserWarning, match="description cache .* unreadable"):
        texts, rep = D.describe(questions(vals), w)
    assert rep.generated == 20 and len(texts) == 20


def test_node_statistics_equal_a_per_node_reference(los_small):
    T = 576
    vals = los_small.values[:T, :, 0].astype(np.float64)
    obs = los_small.observed(slice(0, T))[:, :, 0].copy()
    obs[10:50, 2] = False  # some missing readings
    st = D.node_statistics(vals, obs, los_small.timestamps[:T], los_small.meta)
    ts = los_small.timestamps[:T].astype("datetime64[m]")
    hour = ((ts - ts.astype("datetime64[D]")).astype(int) // 60)
    day = ts.astype("datetime64[D]").astype(int)
    for n in (0, 2, 7):
        v, m = vals[obs[:, n], n], obs[:, n]
        assert st.mean[n] == pytest.approx(v.mean()) and st.std[n] == pytest.approx(v.std())
        hourly = [vals[m & (hour == h), n].mean() for h in range(24)]
        assert st.low_hour[n] == int(np.argmin(hourly)) and st.high[n] == pytest.approx(max(hourly))
        days = sorted(set(day))
        daily = [vals[m & (day == d), n].mean() for d in days]
        assert st.drift[n] == pytest.approx(np.polyfit(np.arange(len(days)), daily, 1)[0])
        assert st.missing[n] == pytest.approx(1 - m.mean())


def test_window_kinds_read_level_trend_volatility_and_missingness():
    L = 12
    base = torch.zeros(1, L, 5)
    base[0, :, 1] = torch.linspace(-2, 2, L)  # rising sharply, near its level on average
    base[0, :, 2] = 2.0  # far above, steady
    base[0, :, 3] = torch.tensor([1.0, -1.0] * 6)  # erratic around its level
    obs = torch.ones(1, L, 5, dtype=torch.bool)
    obs[0, :8, 4] = False  # mostly missing
    kinds = D.window_kinds(base, obs, torch.zeros(5), torch.ones(5))[0].tolist()
    phrases = [D.window_phrase(k) for k in kinds]
    assert phrases[0] == "near its usual level, steady smoothly"
    assert phrases[1].startswith("near its usual level, rising sharply")
    assert phrases[2] == "far above its usual level, steady smoothly"
    assert phrases[3].endswith("erratically")
    assert phrases[4] == "mostly missing"
    assert len(D.window_questions("x", "hour", "hour")) == D.NUM_KINDS


@pytest.mark.slow
def test_smollm2_writes_descriptions_once_and_then_reads_them(tmp_path, monkeypatch):
    monkeypatch.setenv("STCAST_CACHE", str(tmp_path))
    qs = D.window_questions("los-loop", "hour", "hour")[20:23]
    writer = D.get_writer("smollm2-135m")
    texts, rep = D.describe(qs, writer)
    assert rep.generated == 3 and all(len(t.split()) >= 3 for t in texts)
    again, rep = D.describe(qs, D.get_writer("smollm2-135m"))
    assert again == texts and rep.cached == 3


def test_a_sensor_with_no_readings_gets_no_lm_text(los_small, tmp_path, monkeypatch, counting_writer):
    """An LM asked about a sensor whose every statistic is unknown writes readings it never saw."""
    monkeypatch.setenv("STCAST_CACHE", str(tmp_path))
    T = 288
    obs = los_small.observed(slice(0, T))[:, :, 0].copy()
    obs[:, 5] = False
    stats = D.node_statistics(los_small.values[:T, :, 0], obs, los_small.timestamps[:T], los_small.meta)
    questions = D.node_questions(stats, "los-loop", "mph")
    assert [q.fixed for q in questions].count(True) == 1 and questions[5].fixed
    w = counting_writer
    writer = w()
    texts, rep = D.describe(questions, writer)
    assert writer.calls == 19 and rep.generated == 19  # the other 19 sensors go to the writer
    assert texts[5] == "The series has no readings: every reading is missing."
    assert "unknown" not in texts[5] and texts[4] != texts[5]
