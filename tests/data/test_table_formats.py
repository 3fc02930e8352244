"""The delimited tables users export, read as the same table: semicolons with decimal commas (European
spreadsheets), tabs, bars, compressed files, and Windows-1252 names; the graph reader takes the same dialects.
Real Los-loop values; each file's reading is compared with the plain comma CSV's."""

import warnings

import numpy as np
import pandas as pd
import pytest

from stcast.data.files import sniff_table
from stcast.data.user_graph import load_adjacency_file
from stcast.data.user_tables import load_user_table


@pytest.fixture(scope="module")
def frame(los):
    df = pd.DataFrame(los.values[:200, :5, 0].round(3), columns=[f"s{i}" for i in range(5)])
    df.insert(0, "time", pd.date_range("2012-03-01", periods=200, freq="5min").strftime("%Y-%m-%d %H:%M"))
    return df


def _same(a, b):
    assert a.node_ids == b.node_ids and a.num_steps == b.num_steps
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.mask, b.mask)


@pytest.mark.parametrize("name,kw,want", [
    ("semi.csv", dict(sep=";", decimal=","), {"sep": ";", "decimal": ","}),
    ("semi_dot.csv", dict(sep=";"), {"sep": ";"}),
    ("tabs.tsv", dict(sep="\t"), {"sep": "\t"}),
    ("bars.txt", dict(sep="|"), {"sep": "|"}),
    ("semi.csv.gz", dict(sep=";", decimal=","), {"sep": ";", "decimal": ","}),
    ("comma.csv.zip", {}, {}),
])
def test_a_table_in_any_common_dialect_reads_as_the_comma_csv(tmp_path, frame, name, kw, want):
    """Before: a semicolon file was one column named 'time;s0;s1;...' and the error said it held numbers, not
    timestamps."""
    frame.to_csv(tmp_path / "plain.csv", index=False)
    frame.to_csv(tmp_path / name, index=False, **kw)
    assert sniff_table(tmp_path / name) == want
    _same(load_user_table(tmp_path / name), load_user_table(tmp_path / "plain.csv"))


def test_a_comma_table_whose_names_hold_semicolons_stays_a_comma_table(tmp_path, frame):
    odd = frame.rename(columns={"s0": "a;b", "s1": "c;d"})
    odd.to_csv(tmp_path / "odd.csv", index=False)
    assert sniff_table(tmp_path / "odd.csv") == {}
    assert load_user_table(tmp_path / "odd.csv").node_ids[:2] == ["a;b", "c;d"]


def test_a_windows_1252_export_is_read_and_said(tmp_path, frame):
    """Before: "'utf-8' codec can't decode byte 0xe9": the table was refused."""
    named = frame.rename(columns={"s0": "capteur_é", "s1": "straße"})
    named.to_csv(tmp_path / "win.csv", index=False, encoding="cp1252", sep=";", decimal=",")
    with pytest.warns(UserWarning, match="is not UTF-8 .*read it as cp1252"):
        data = load_user_table(tmp_path / "win.csv")
    assert data.node_ids[:2] == ["capteur_é", "straße"]
    named.to_csv(tmp_path / "utf8.csv", index=False, encoding="utf-8-sig")  # with a byte-order mark: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(load_user_table(tmp_path / "utf8.csv"), data)


def test_the_graph_reader_takes_the_same_dialects(tmp_path, los):
    adj = np.round(los.adjacency[:5, :5].astype(np.float64), 4)
    ids = [f"s{i}" for i in range(5)]
    pd.DataFrame(adj, index=ids, columns=ids).to_csv(tmp_path / "g.csv", sep=";", decimal=",")
    np.testing.assert_allclose(load_adjacency_file(tmp_path / "g.csv", 5, node_ids=ids), adj, rtol=1e-6)


def test_binary_files_under_a_tables_name_are_named_as_such(tmp_path, frame):
    """A workbook saved as .csv, or any binary file: "'charmap' codec can't decode byte 0x8d in position 1865"
    before; now what the file is, and what to give instead."""
    import zipfile

    from stcast.errors import StcastError

    with zipfile.ZipFile(tmp_path / "book.csv", "w") as z:  # an .xlsx is a zip archive
        z.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    with pytest.raises(StcastError, match=r"holds binary data \(a zip archive: an .xlsx workbook\?\), not a text"):
        load_user_table(tmp_path / "book.csv")
    (tmp_path / "image.csv").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(StcastError, match="holds binary data, not a text table"):
        load_user_table(tmp_path / "image.csv")
    frame.to_csv(tmp_path / "zipped.csv.gz", index=False)  # compressed tables are not binary junk
    assert load_user_table(tmp_path / "zipped.csv.gz").num_nodes == 5


def test_a_spreadsheet_is_read_by_pandas_or_names_the_reader_it_needs(tmp_path, frame, monkeypatch):
    from stcast.errors import StcastError

    seen = {}

    def fake_read_excel(path, sheet_name=0):
        seen["path"], seen["sheet"] = path, sheet_name
        return frame

    monkeypatch.setattr(pd, "read_excel", fake_read_excel)
    (tmp_path / "sensors.xlsx").write_bytes(b"PK\x03\x04")
    data = load_user_table(tmp_path / "sensors.xlsx")
    assert seen == {"path": tmp_path / "sensors.xlsx", "sheet": 0} and data.num_nodes == 5

    def missing(path, sheet_name=0):
        raise ImportError("Missing optional dependency 'openpyxl'.", name="openpyxl")

    monkeypatch.setattr(pd, "read_excel", missing)
    with pytest.raises(StcastError, match=r"is a spreadsheet; reading it needs openpyxl \(pip install openpyxl\)"):
        load_user_table(tmp_path / "sensors.xlsx")


def test_spaces_after_the_commas_are_not_part_of_the_names(tmp_path, frame):
    """'time, s0, s1' named the sensors ' s0', ' s1': a graph or a later table naming 's0' did not match them."""
    text = frame.to_csv(index=False).replace(",", ", ")
    (tmp_path / "spaced.csv").write_text(text)
    frame.to_csv(tmp_path / "plain.csv", index=False)
    _same(load_user_table(tmp_path / "spaced.csv"), load_user_table(tmp_path / "plain.csv"))
    (tmp_path / "twice.csv").write_text(text.replace("s1", "s0 ", 1))  # 's0' and 's0 ': one name twice
    from stcast.errors import StcastError

    with pytest.raises(StcastError, match="'s0' appear more than once"):
        load_user_table(tmp_path / "twice.csv")


def test_a_spreadsheets_empty_margins_are_dropped_and_said(tmp_path, frame):
    """'time,s0,...,,' and ',,,' rows at the end (what spreadsheets export): "3 rows have no timestamp" before."""
    from stcast.errors import StcastError

    text = frame.to_csv(index=False).replace("\n", ",,\n")
    (tmp_path / "margins.csv").write_text(text + ",,,,,,,\n" * 3)
    frame.to_csv(tmp_path / "plain.csv", index=False)
    with pytest.warns(UserWarning, match=r"dropped 2 column\(s\) with no name and no value and 3 row\(s\)"):
        _same(load_user_table(tmp_path / "margins.csv"), load_user_table(tmp_path / "plain.csv"))
    # an empty row in the middle: a later bad row is still named by its line in the file
    lines = frame.to_csv(index=False).splitlines()
    lines.insert(5, ",,,,,")
    lines[50] = "," + lines[50].split(",", 1)[1]  # readings without a timestamp, on the file's line 51
    (tmp_path / "middle.csv").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="dropped 0 column"), pytest.raises(StcastError, match=r"\(e.g. line 51\)"):
        load_user_table(tmp_path / "middle.csv")


def test_a_units_row_under_the_header_is_skipped_and_said(tmp_path, frame):
    """'UTC,mph,mph,...' on line 2: "column 'time' does not hold timestamps (... UTC)" before. A first row of
    missing markers ('-') is data, not units; a long table's first row is data."""
    from stcast.errors import StcastError

    lines = frame.to_csv(index=False).splitlines()
    (tmp_path / "units.csv").write_text("\n".join([lines[0], "UTC" + ",mph" * 5] + lines[1:]) + "\n")
    frame.to_csv(tmp_path / "plain.csv", index=False)
    with pytest.warns(UserWarning, match=r"line 2 \(UTC, mph, mph, mph, ...\) reads as a second header row"):
        _same(load_user_table(tmp_path / "units.csv"), load_user_table(tmp_path / "plain.csv"))
    bad = [lines[0], "UTC" + ",mph" * 5] + lines[1:]
    bad[40] = "," + bad[40].split(",", 1)[1]  # line 41 of the file (list index 40) has no timestamp
    (tmp_path / "units-bad.csv").write_text("\n".join(bad) + "\n")
    with pytest.warns(UserWarning, match="second header row"), pytest.raises(StcastError, match=r"e.g. line 41\)"):
        load_user_table(tmp_path / "units-bad.csv")
    dashes = [lines[0], lines[1].split(",", 1)[0] + ",-" * 5] + lines[2:]
    (tmp_path / "dashes.csv").write_text("\n".join(dashes) + "\n")
    with pytest.warns(UserWarning, match="5 cells read as missing readings"):
        assert load_user_table(tmp_path / "dashes.csv").num_steps == 200
