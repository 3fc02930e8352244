"""Pictures read back: each `stcast plot` kind writes a PNG of the right size that is not blank; bands of data that
is never negative are clipped at 0; the results page is generated from result CSVs."""

import csv

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from stcast.bench import pictures, report, report_plots
from stcast.cli import main
from stcast.errors import StcastError


def _looks_drawn(path, min_w=600, min_h=300):
    img = imread(path)
    assert img.shape[0] >= min_h and img.shape[1] >= min_w
    gray = img[..., :3].mean(-1)
    assert gray.std() > 0.02 and (gray < 0.5).mean() > 0.001  # lines and text, not an empty canvas


@pytest.fixture(scope="module")
def table(los_small, tmp_path_factory):
    path = tmp_path_factory.mktemp("pics") / "roads.csv"
    frame = pd.DataFrame(np.asarray(los_small.values[:, :, 0]), columns=los_small.node_ids)
    frame.insert(0, "timestamp", los_small.timestamps)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def stid_file(table):
    out = table.parent / "stid.pt"
    assert main(["train", "--model", "stid", "--dataset", str(table), "--epochs", "2", "--quantiles", "0.1,0.5,0.9",
                 "--null-value", "0", "--out", str(out), "--set", "train.progress=false"]) == 0
    return out


def test_plot_forecast_and_errors_from_a_model_file(stid_file, table, capsys):
    for what in ("forecast", "errors"):
        out = table.parent / f"{what}.png"
        assert main(["plot", what, "--model-file", str(stid_file), "--null-value", "0", "--out", str(out)]) == 0
        assert f"wrote {out}" in capsys.readouterr().out
        _looks_drawn(out)
    out = table.parent / "step3.png"
    assert main(["plot", "forecast", "--model-file", str(stid_file), "--null-value", "0", "--node", "4", "--step",
                 "3", "--out", str(out)]) == 0
    _looks_drawn(out)
    assert main(["plot", "forecast", "--model-file", str(stid_file), "--step", "13"]) == 2
    assert "--step 13: the model forecasts steps 1..12" in capsys.readouterr().err
    assert main(["plot", "imputation", "--model-file", str(stid_file)]) == 2
    assert "trained to forecast; plot imputation needs" in capsys.readouterr().err


def test_plot_imputation_from_an_imputation_model(table, capsys):
    model = table.parent / "brits.pt"
    assert main(["train", "--model", "brits", "--task", "impute", "--dataset", str(table), "--input-len", "24",
                 "--epochs", "1", "--set", "train.max_batches_per_epoch=3", "--set", "train.progress=false",
                 "--out", str(model)]) == 0
    out = table.parent / "imputation.png"
    assert main(["plot", "imputation", "--model-file", str(model), "--out", str(out)]) == 0
    _looks_drawn(out)


def test_errors_are_drawn_on_a_map_where_the_data_has_coordinates(los, tmp_path):
    assert los.coords is not None and los.coords.shape == (207, 2)  # METR-LA's sensor locations, read with the data
    assert 33 < los.coords[:, 0].min() and los.coords[:, 1].max() < -117  # Los Angeles
    data = los.subset_nodes(np.arange(20))
    W, H, N = 30, 12, data.num_nodes
    truth = torch.rand(W, H, N, 1) * 60
    scored = {"pred": truth + torch.randn_like(truth), "truth": truth, "mask": torch.ones(W, H, N, 1, dtype=bool),
              "starts": np.arange(W) * 5, "input_len": 12}
    out = pictures.plot_errors(data, scored, tmp_path / "map.png")
    _looks_drawn(out)


def test_bands_of_never_negative_data_are_clipped_at_zero(los_small):
    band = torch.tensor([[-3.0, 5.0]])
    (clipped,), note = pictures.clip_if_never_negative(los_small, band)
    assert clipped.min() == 0 and "clipped at 0" in note
    signed = los_small.__class__(values=los_small.values - 100, timestamps=los_small.timestamps, meta=los_small.meta,
                                 mask=los_small.mask)
    (kept,), note = pictures.clip_if_never_negative(signed, band)
    assert kept.min() == -3 and note == ""


def _write(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_report_and_plot_results_from_result_csvs(tmp_path, capsys):
    rows = []
    for seed, (a, b) in enumerate([(3.19, 3.37), (3.18, 3.35), (3.19, 3.36)]):
        rows += [dict(dataset="metr-la", model="stid", mae=a, seed=seed, train_s=600, table="equal time"),
                 dict(dataset="metr-la", model="ust-sllm", mae=b, seed=seed, train_s=630, table="equal time")]
    rows.append(dict(dataset="metr-la", model="last-value", mae=4.25, seed=0, train_s=0, table="equal time"))
    _write(tmp_path / "eq.csv", rows)
    _write(tmp_path / "lm.csv", [dict(dataset="metr-la", model=f"ust-sllm ({k})", method="ust-sllm", backbone=k,
                                      mae=m, mae_std=0.01, seeds=3, train_s=t)
                                 for k, m, t in (("pretrained", 3.39, 1379), ("random", 3.40, 1197),
                                                 ("removed", 3.41, 220))])
    entries = report.read_results([tmp_path / "eq.csv", tmp_path / "lm.csv"])
    stid = next(e for e in entries if e.model == "stid")
    assert stid.seeds == 3 and abs(stid.mae - 3.1867) < 1e-3 and stid.mae_std > 0
    out = tmp_path / "docs" / "results.md"
    assert main(["report", str(tmp_path / "eq.csv"), str(tmp_path / "lm.csv"), "--out", str(out)]) == 0
    page = out.read_text()
    assert "## Which model to use" in page and "| 1 | **stid** | 3.187 +- 0.006 | 1.000 |" in page
    assert "ust-sllm (3 seeds), is 5.4 % behind" in page
    for name in ("reference", "leaderboards", "cost", "backbones"):
        _looks_drawn(tmp_path / "docs" / "figures" / f"results-{name}.png", 300, 250)
    png = tmp_path / "results.png"
    assert main(["plot", "results", str(tmp_path / "eq.csv"), "--out", str(png)]) == 0
    _looks_drawn(png)


def test_advice_names_the_longest_trained_table_beside_the_broadest_one(tmp_path):
    """A short-budget table with many models and a converged one with two can rank differently: the advice gives
    both, each with its seeds, and says who is behind whom whichever side leads."""
    short = [dict(dataset="metr-la", model=m, mae=v, passes=p, table="equal time")
             for m, v, p in (("stid", 3.19, 7.5), ("ust-sllm", 3.36, 1.2), ("lstm", 3.74, 1), ("ha", 4.2, 0))]
    long = [dict(dataset="metr-la", model=m, mae=v, passes=p, table="converged")
            for m, v, p in (("stid", 3.151, 22), ("llm-ts-net", 3.123, 11))]
    _write(tmp_path / "short.csv", short)
    _write(tmp_path / "long.csv", long)
    lines = report.advice(report.read_results([tmp_path / "short.csv", tmp_path / "long.csv"]))
    full = next(line for line in lines if "With all the data" in line)
    assert "stid (metr-la, equal time: MAE 3.190, 1 seed); the best language-model method, ust-sllm (1 seed), " \
           "is 5.3 % behind" in full
    assert "Trained longest: llm-ts-net (metr-la, converged: MAE 3.123, 1 seed); the best model without a " \
           "language model, stid (1 seed), is 0.9 % behind" in full
    _write(tmp_path / "long.csv", [dict(r, passes=0.5) for r in long])  # the short table is now the longest
    lines = report.advice(report.read_results([tmp_path / "short.csv", tmp_path / "long.csv"]))
    assert "Trained longest" not in next(line for line in lines if "With all the data" in line)


def test_pareto_front_and_bad_result_files(tmp_path):
    assert report.pareto_front([(1, 5.0), (2, 4.0), (3, 4.5), (10, 3.0)]) == [0, 1, 3]
    with pytest.raises(StcastError, match="does not exist"):
        report.read_results([tmp_path / "none.csv"])
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(StcastError, match="needs the columns dataset, model and mae"):
        report.read_results([tmp_path / "bad.csv"])
    _write(tmp_path / "odd.csv", [dict(dataset="x", model="m", mae=1.0, setting="half-shot")])
    with pytest.raises(StcastError, match="line 2: setting 'half-shot'"):
        report.read_results([tmp_path / "odd.csv"])
    (tmp_path / "vals.csv").write_text("dataset,model,mae\nx,a,1.5\nx,b,nan\nx,c,\nx,d,inf\n")
    unranked: list[str] = []
    assert [e.model for e in report.read_results([tmp_path / "vals.csv"], unranked)] == ["a"]  # not ranked...
    assert [u.split(":")[0] for u in unranked] == [f"{tmp_path / 'vals.csv'} line {i}" for i in (3, 4, 5)]
    assert "b on x (vals) has mae 'nan'" in unranked[0]  # ...but each named, for the page's "Not ranked"
    (tmp_path / "vals.csv").write_text("dataset,model,mae\nx,a,1.5\nx,b,3.2 MAE\n")
    with pytest.raises(StcastError, match="line 3: mae .3.2 MAE. is not a number"):  # text, not a blank
        report.read_results([tmp_path / "vals.csv"])
    (tmp_path / "vals.csv").write_text("dataset,model,mae,passes\nx,a,1.5,3\nx,b,1.6,three\n")
    with pytest.raises(StcastError, match="line 3: passes 'three' is not a number"):  # any numeric column
        report.read_results([tmp_path / "vals.csv"])
    (tmp_path / "vals.csv").write_text("dataset,model,mae,train_s\nx,a,1.5,-20\n")
    with pytest.raises(StcastError, match="line 2: train_s '-20' is negative"):
        report.read_results([tmp_path / "vals.csv"])
    (tmp_path / "vals.csv").write_text("dataset,model,mae\n")
    with pytest.raises(StcastError, match="holds no result rows"):
        report.read_results([tmp_path / "vals.csv"])


def test_the_page_lists_the_rows_it_did_not_rank(tmp_path, capsys):
    (tmp_path / "r.csv").write_text("dataset,model,mae\nx,stid,3.1\nx,st-vlm,nan\n")
    out = tmp_path / "results.md"
    assert main(["report", str(tmp_path / "r.csv"), "--out", str(out)]) == 0
    assert "stcast: note:" in capsys.readouterr().out
    page = out.read_text()
    assert "## Not ranked" in page and "st-vlm on x (r) has mae 'nan'" in page
    assert "| 1 | **stid** |" in page and "| st-vlm |" not in page


def test_the_results_page_names_the_files_it_was_made_from_as_typed(tmp_path):
    for folder in ("a", "b", "runs"):
        (tmp_path / folder).mkdir()
        for i in range(2):
            (tmp_path / folder / f"t{i}.csv").write_text("dataset,model,mae\n")
    whole = [tmp_path / f / f"t{i}.csv" for f in ("a", "b") for i in range(2)]
    assert report.files_as_glob(whole) == f"{tmp_path}/{{a,b}}/*.csv"  # the raw runs folder not among them
    assert report.files_as_glob(whole[:2] + [tmp_path / "b" / "t0.csv", tmp_path / "runs" / "t0.csv"]) == \
        " ".join(str(p) for p in whole[:2] + [tmp_path / "b" / "t0.csv", tmp_path / "runs" / "t0.csv"])
    assert report.files_as_glob(whole[:2]) == " ".join(map(str, whole[:2]))  # three or fewer: as given
    (tmp_path / "a" / "t2.csv").write_text("dataset,model,mae\n")
    (tmp_path / "a" / "t3.csv").write_text("dataset,model,mae\n")
    assert report.files_as_glob(sorted((tmp_path / "a").glob("*.csv"))) == f"{tmp_path}/a/*.csv"


def test_the_language_model_picture_never_sets_rows_of_two_tables_side_by_side(tmp_path):
    rows = [dict(dataset="metr-la", table="2 passes", model=f"ust-sllm ({k})", method="ust-sllm", backbone=k, mae=m)
            for k, m in (("pretrained", 3.39), ("random", 3.40))]
    rows += [dict(dataset="metr-la", table="converged", model=f"ust-sllm ({k})", method="ust-sllm", backbone=k,
                  mae=m) for k, m in (("random", 3.66), ("removed", 3.66))]
    rows.append(dict(dataset="metr-la", table="converged", model="st-link (random)", method="st-link",
                     backbone="random", mae=3.8))  # alone in its table: nothing to compare it with
    _write(tmp_path / "lm.csv", rows)
    groups = report.backbone_groups(report.read_results([tmp_path / "lm.csv"]))
    assert {k: sorted(v) for k, v in groups.items()} == {("ust-sllm", "2 passes"): ["pretrained", "random"],
                                                          ("ust-sllm", "converged"): ["random", "removed"]}
    assert groups[("ust-sllm", "converged")]["random"].mae == 3.66  # not the 2-pass row of the same name
    _looks_drawn(report_plots.plot_backbones(report.read_results([tmp_path / "lm.csv"]), tmp_path / "b.png"), 300, 250)
    _write(tmp_path / "one.csv", rows[-1:])
    with pytest.raises(StcastError, match="nothing to draw of what the language model adds"):
        report_plots.plot_backbones(report.read_results([tmp_path / "one.csv"]), tmp_path / "c.png")


def test_a_published_figure_is_shown_beside_ours_and_never_ranked():
    rows = [report.Entry("aqi36", "t", "grin", "imputation", 12.9, values={"published": "12.08 (GRIN paper)"}),
            report.Entry("aqi36", "t", "brits", "imputation", 13.9)]
    lines = report.leaderboard_markdown(rows).splitlines()
    assert lines[0].startswith("| # | model | MAE | published | x STID |")
    assert lines[2].startswith("| 1 | **grin** | 12.900 | 12.08 (GRIN paper) |")
    assert lines[3].startswith("| 2 | brits | 13.900 |  |")
    assert "published" not in report.leaderboard_markdown(rows[1:])  # no cited figure: no column


def test_the_stid_picture_reads_the_longest_trained_table_of_each_setting(tmp_path):
    """Against STID: per trained setting, the table holding STID that trained the most passes, on the dataset with
    the most such rows; a table without STID, another dataset's, or a shorter budget's is not drawn."""
    def rows(table, setting, passes, pairs, dataset="metr-la"):
        return [dict(dataset=dataset, table=table, setting=setting, model=m, mae=v, passes=passes) for m, v in pairs]
    _write(tmp_path / "r.csv",
           rows("equal time", "full", 3, [("stid", 3.19), ("ust-sllm", 3.36), ("ha", 4.2)])
           + rows("converged", "full", 15, [("stid", 3.158), ("llm-ts-net", 3.099)])
           + rows("10 % converged", "few-shot", 12, [("stid", 3.353), ("lstm", 3.68)])
           + rows("10 % budget", "few-shot", 5, [("stid", 3.35), ("lstm", 3.9)])
           + rows("no stid", "full", 99, [("lstm", 3.5), ("gwnet", 3.4)])
           + rows("other place", "full", 50, [("stid", 3.6), ("lstm", 3.7)], dataset="los-loop"))
    entries = report.read_results([tmp_path / "r.csv"])
    assert [r[0].table for r in report_plots.reference_tables(entries)] == ["converged", "10 % converged"]
    _looks_drawn(report_plots.plot_reference(entries, tmp_path / "ref.png"), 500, 200)
    _write(tmp_path / "none.csv", rows("no stid", "full", 9, [("lstm", 3.5), ("gwnet", 3.4)]))
    with pytest.raises(StcastError, match="no table holds stid beside another model"):
        report_plots.plot_reference(report.read_results([tmp_path / "none.csv"]), tmp_path / "n.png")


def test_the_page_gives_welchs_p_where_both_rows_have_seeds(tmp_path):
    """Per-seed rows are averaged (mean, std, count); Welch's p from those equals scipy's test on the seeds
    themselves, and it is printed only where both sides have two seeds or more."""
    from scipy import stats

    a, b = [3.40, 3.47, 3.39], [3.35, 3.356, 3.352]
    rows = [dict(dataset="metr-la", table="t", model="llm-ts-net", method="llm-ts-net", backbone="pretrained",
                 mae=v, seed=i) for i, v in enumerate(a)]
    rows += [dict(dataset="metr-la", table="t", model="llm-ts-net (random)", method="llm-ts-net", backbone="random",
                  mae=v, seed=i) for i, v in enumerate(b)]
    rows += [dict(dataset="metr-la", table="t", model="llm-ts-net (removed)", method="llm-ts-net",
                  backbone="removed", mae=3.5, seed=0)]
    _write(tmp_path / "r.csv", rows)
    entries = {e.model: e for e in report.read_results([tmp_path / "r.csv"])}
    want = stats.ttest_ind(a, b, equal_var=False).pvalue
    assert abs(report.welch_p(entries["llm-ts-net"], entries["llm-ts-net (random)"]) - want) < 1e-9
    assert report.welch_p(entries["llm-ts-net"], entries["llm-ts-net (removed)"]) is None  # one seed
    (line,) = report.lm_lines(list(entries.values()))
    assert f"pretrained behind random by 0.067 (Welch's t-test over the seeds: p = {want:.2g})" in line
    assert line.endswith("pretrained ahead of removed by 0.080.")
