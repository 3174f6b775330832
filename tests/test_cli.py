"""The command line: CSV files as users write them, one-line refusals and exit statuses.

Files are written the way other tools write them (R's ``write.csv`` and
``write.table``, pandas' ``to_csv``, European spreadsheets, gzip, UTF-16) and
fed to ``bayesgmm.cli.main`` in-process, EM only.
"""

import gzip
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from bayesgmm import cli

_RNG = np.random.default_rng(1)
#: Two well separated blobs, rounded to 3 decimals as a spreadsheet would show them.
X = np.round(np.r_[_RNG.normal(0, 1, (30, 2)), _RNG.normal(6, 1, (30, 2))], 3)


def run(argv, capsys):
    """Run the CLI in-process; return (status, stdout, stderr)."""
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def fit_ok(path, tmp_path, capsys, *extra):
    out = tmp_path / "out"
    status, stdout, stderr = run(["fit", path, "--methods", "em", "--k", "1-2", "--quiet",
                                  "--out", out, *extra], capsys)
    assert status == 0, stderr
    summary = pd.read_csv(out / "report_files" / "data_summary.csv", index_col=0)
    return stdout, summary


def assert_refused(status, stdout, stderr, fragment, out=None):
    """Exit 2, exactly one line on stderr holding ``fragment``, no traceback, nothing written."""
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith("bayesgmm: error: "), stderr
    assert "Traceback" not in stderr
    assert fragment in stderr
    if out is not None:
        assert not out.exists()


def test_demo_prints_the_choice_and_writes_the_table(tmp_path, capsys):
    assert cli.main(["demo", "--methods", "em", "--quiet", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "pick K=2" in out and "report:" in out
    assert (tmp_path / "demo" / "report.html").exists()
    assert (tmp_path / "demo" / "report.md").exists()


# --------------------------------------------------------------------------
# files as users write them
# --------------------------------------------------------------------------


def test_r_write_csv_row_names_are_left_out_with_one_line(tmp_path, capsys):
    path = tmp_path / "r.csv"  # write.csv(df): quoted "" header over row names 1..N
    rows = [f'"{i + 1}",{a},{b}' for i, (a, b) in enumerate(X)]
    path.write_text('"","x","y"\n' + "\n".join(rows) + "\n")
    stdout, summary = fit_ok(path, tmp_path, capsys)
    assert summary.index.tolist() == ["x", "y"]
    np.testing.assert_allclose(summary["mean"], X.mean(axis=0), rtol=1e-12)
    notes = [line for line in stdout.splitlines() if line.startswith("left out")]
    assert len(notes) == 1 and "row names" in notes[0]


def test_r_row_names_that_are_text_are_left_out_too(tmp_path, capsys):
    path = tmp_path / "cars.csv"  # write.csv(mtcars): car names as row names
    rows = [f'"car {i}",{a},{b}' for i, (a, b) in enumerate(X)]
    path.write_text('"","x","y"\n' + "\n".join(rows) + "\n")
    _, summary = fit_ok(path, tmp_path, capsys)
    assert summary.index.tolist() == ["x", "y"]


def test_pandas_to_csv_index_is_left_out(tmp_path, capsys):
    path = tmp_path / "pandas.csv"
    pd.DataFrame(X, columns=["x", "y"]).to_csv(path)  # header ",x,y", index 0..N-1
    _, summary = fit_ok(path, tmp_path, capsys)
    assert summary.index.tolist() == ["x", "y"]


def test_r_write_table_space_separated_short_header(tmp_path, capsys):
    path = tmp_path / "r.txt"  # write.table(df): space, one header field fewer than rows
    rows = [f'"{i + 1}" {a} {b}' for i, (a, b) in enumerate(X)]
    path.write_text('"x" "y"\n' + "\n".join(rows) + "\n")
    stdout, summary = fit_ok(path, tmp_path, capsys)
    assert summary.index.tolist() == ["x", "y"]
    assert "separator space" in stdout


def test_id_column_is_left_out_unless_columns_names_it(tmp_path, capsys):
    path = tmp_path / "ids.csv"
    frame = pd.DataFrame(X, columns=["x", "y"])
    frame.insert(0, "id", np.arange(101, 101 + len(X))[_RNG.permutation(len(X))])
    frame.to_csv(path, index=False)
    stdout, summary = fit_ok(path, tmp_path, capsys)
    assert summary.index.tolist() == ["x", "y"]
    note = [line for line in stdout.splitlines() if line.startswith("left out")]
    assert note == ["left out 'id' (unique consecutive integers 101..160: an id); "
                    "name a column in --columns to keep it"]
    stdout, summary = fit_ok(path, tmp_path, capsys, "--columns", "id,y")
    assert summary.index.tolist() == ["id", "y"]
    assert "left out" not in stdout


def test_integer_feature_that_is_not_an_id_is_kept(tmp_path, capsys):
    path = tmp_path / "counts.csv"
    counts = np.r_[np.arange(1, 31), np.arange(1, 31) + 40]  # unique but not consecutive
    pd.DataFrame({"count": counts, "y": X[:, 1]}).to_csv(path, index=False)
    _, summary = fit_ok(path, tmp_path, capsys)
    assert summary.index.tolist() == ["count", "y"]


def _european(X, sep=";"):
    lines = [f"x{sep}y"] + [f"{a:.3f}{sep}{b:.3f}".replace(".", ",") for a, b in X]
    return "\r\n".join(lines) + "\r\n"


def test_european_semicolon_and_decimal_comma_are_sniffed(tmp_path, capsys):
    path = tmp_path / "eu.csv"
    path.write_bytes(_european(X).replace("x;y", "Größe;y").encode("cp1252"))
    stdout, summary = fit_ok(path, tmp_path, capsys)
    assert summary.index.tolist() == ["Größe", "y"]
    np.testing.assert_allclose(summary["mean"], X.mean(axis=0), rtol=1e-12)
    assert "separator ';', decimal ','" in stdout
    assert "Windows-1252" in stdout


def test_single_european_column_keeps_its_decimal_commas(tmp_path, capsys):
    path = tmp_path / "one.csv"  # "1,5" must not split into a row name 1 and a value 5
    path.write_text("x\n" + "".join(f"{a:.3f}\n".replace(".", ",") for a in X[:, 0]))
    _, summary = fit_ok(path, tmp_path, capsys)
    assert summary.index.tolist() == ["x"]
    np.testing.assert_allclose(summary.loc["x", "mean"], X[:, 0].mean(), rtol=1e-12)


def test_european_tab_separated_with_thousands_points(tmp_path, capsys):
    path = tmp_path / "eu.tsv"
    big = np.round(X * 1000, 1)
    lines = ["x\ty"] + [f"{a:_.1f}\t{b:_.1f}".replace(".", ",").replace("_", ".")
                        for a, b in big]
    path.write_text("\n".join(lines) + "\n")
    stdout, summary = fit_ok(path, tmp_path, capsys)
    np.testing.assert_allclose(summary["mean"], big.mean(axis=0), rtol=1e-12)
    assert "separator tab, decimal ','" in stdout


def test_sep_and_decimal_override_the_sniffer(tmp_path, capsys):
    path = tmp_path / "eu.csv"
    path.write_text(_european(X))
    out = tmp_path / "out"
    status, _, err = run(["fit", path, "--decimal", ".", "--out", out], capsys)
    assert_refused(status, "", err, "for decimal commas pass --decimal ,", out)
    status, _, err = run(["fit", path, "--sep", ",", "--out", out], capsys)
    assert_refused(status, "", err, "pass --sep", out)
    # a pipe-separated file whose first rows are whole numbers: --decimal says what they are
    pipe = tmp_path / "pipe.csv"
    pipe.write_text("x|y\n" + "".join(f"{i}|{i % 7}\n" for i in range(150))
                    + "".join(f"{a:.3f}|{b:.3f}\n".replace(".", ",") for a, b in X))
    status, _, err = run(["fit", pipe, "--out", out], capsys)
    assert_refused(status, "", err, "for decimal commas pass --decimal ,", out)
    _, summary = fit_ok(pipe, tmp_path, capsys, "--decimal", ",")
    assert summary.loc["x", "count"] == 150 + len(X)


def test_header_with_spaces_can_be_selected(tmp_path, capsys):
    path = tmp_path / "spaces.csv"
    lines = [" x , y , z "] + [f"{a}, {b} ,{a + b}" for a, b in X]
    path.write_text("\n".join(lines) + "\n")
    _, summary = fit_ok(path, tmp_path, capsys, "--columns", "x, z")
    assert summary.index.tolist() == ["x", "z"]


def test_excel_utf8_bom_and_trailing_separators(tmp_path, capsys):
    path = tmp_path / "excel.csv"
    lines = ["x;y;;"] + [f"{a:.3f};{b:.3f};;".replace(".", ",") for a, b in X] + [";;;"]
    path.write_bytes("\r\n".join(lines).encode("utf-8-sig"))
    _, summary = fit_ok(path, tmp_path, capsys, "--columns", "x,y")
    assert summary.index.tolist() == ["x", "y"]
    stdout, summary = fit_ok(path, tmp_path, capsys)
    assert summary.index.tolist() == ["x", "y"]
    assert ("left out empty unnamed field 3 (trailing separators?); empty unnamed field 4 "
            "(trailing separators?)\n") in stdout


def test_excel_sep_directive_line(tmp_path, capsys):
    path = tmp_path / "excel.csv"
    lines = ["sep=;", "x;y"] + [f"{a:.3f};{b:.3f}".replace(".", ",") for a, b in X]
    path.write_text("\n".join(lines) + "\n")
    stdout, summary = fit_ok(path, tmp_path, capsys)
    assert summary.index.tolist() == ["x", "y"]
    np.testing.assert_allclose(summary["mean"], X.mean(axis=0), rtol=1e-12)
    assert "separator ';', decimal ','" in stdout
    path.write_text("\n".join([*lines[:3], "1;2;3", *lines[3:]]) + "\n")
    status, _, stderr = run(["fit", path, "--out", tmp_path / "no"], capsys)
    assert_refused(status, "", stderr, "(line 4 has 3", tmp_path / "no")


# --------------------------------------------------------------------------
# hostile input: one line, exit status 2, nothing written
# --------------------------------------------------------------------------


def _plain_csv(X, header="x,y"):
    return header + "\n" + "".join(f"{a},{b}\n" for a, b in X)


HOSTILE_FILES = {
    "binary": (bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)),
               "binary data"),
    "gzip": (gzip.compress(_plain_csv(X).encode()), "gzip-compressed"),
    "utf16": (_plain_csv(X).encode("utf-16"), "UTF-16"),
    "utf16-no-bom": (_plain_csv(X).encode("utf-16-le"), "UTF-16"),
    "xlsx": (b"PK\x03\x04" + bytes(200), "export the sheet as CSV"),
    "empty": (b"", "is empty"),
    "header-only": (b"x,y\n", "has a header but no rows"),
    "ragged": (b"x,y,z\n1,2,3\n4,5\n6,7,8\n", "1 row(s) do not have the header's 3 fields "
                                                "(line 3 has 2"),
    "ragged-long": (b"x,y\n1,2\n4,5,6\n6,7\n", "(line 3 has 3"),
    "bool": (("x,flag\n" + "".join(f"{a},{'TRUE' if a > 3 else 'FALSE'}\n" for a in X[:, 0]))
             .encode(), "column 'flag' holds TRUE/FALSE values"),
    "python-bool": (("x,flag\n" + "".join(f"{a},{a > 3}\n" for a in X[:, 0])).encode(),
                    "column 'flag' holds TRUE/FALSE values"),
    "inf": ((_plain_csv(X) + "1.0,Inf\n").encode(),
            "column 'y' has 1 infinite value(s) (e.g. 'Inf' on line 62)"),
    "constant": (("x,c\n" + "".join(f"{a},3.5\n" for a in X[:, 0])).encode(),
                 "column 'c' is constant"),
    "text": (("x,label\n" + "".join(f"{a},n{i}\n" for i, a in enumerate(X[:, 0]))).encode(),
             "column 'label' is not numeric (e.g. 'n0' on line 2); choose numeric columns "
             "with --columns (e.g. --columns x)"),
    "mixed-decimals": (b"x;y\n1,5;2.5\n2,5;3.5\n3,5;1.5\n", "mixes decimal commas"),
    "duplicate-header": (b"x,y,x\n1,2,3\n4,5,6\n7,8,9\n", "names column 'x' twice"),
    "bad-quotes": (b'x,y\n1,"2\n3,4\n', "not valid CSV"),
    "no-header": (_plain_csv(X, header="0.5,1.25").encode(),
                  "is numbers (0.5, 1.25), not column names; add a header row"),
}


#: Files with blank or NA cells: fitted by default, refused with --missing error.
BLANK = ("x,y\n" + "".join(f"{a},{'' if i % 10 == 3 else b}\n" for i, (a, b) in enumerate(X)))
MISSING_FILES = {
    "blank": (BLANK.encode(),
              "column 'y' has blank or NA cells in 6 of 60 rows (lines 5, 15, 25, 35, 45, ...)"),
    "r-na": (("x,y\n" + "".join(f"{a},{'NA' if i == 7 else b}\n"
                                for i, (a, b) in enumerate(X))).encode(),
             "column 'y' has blank or NA cells in 1 of 60 rows (lines 9)"),
}


@pytest.mark.parametrize("name", list(HOSTILE_FILES))
def test_hostile_file_is_refused_in_one_line(name, tmp_path, capsys):
    content, fragment = HOSTILE_FILES[name]
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    out = tmp_path / "out"
    status, stdout, stderr = run(["fit", path, "--methods", "em", "--k", "1-2", "--quiet",
                                  "--out", out], capsys)
    assert_refused(status, stdout, stderr, fragment, out)
    assert "report" not in stdout


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--columns", ","], "--columns names no column"),
        (["--columns", "x,nope"], "--columns: ['nope'] not in"),
        (["--columns", "x,x"], "--columns names ['x'] more than once"),
        (["--draws", "0"], "argument --draws: must be at least 1, got 0"),
        (["--chains", "0"], "argument --chains: must be at least 1, got 0"),
        (["--tune", "-5"], "argument --tune: must be at least 0, got -5"),
        (["--draws", "many"], "argument --draws: must be an integer, got 'many'"),
        (["--seed", "-1"], "argument --seed: must be at least 0"),
        (["--sep", "ab"], "argument --sep: must be one separator character"),
        (["--decimal", ";"], "argument --decimal: invalid choice"),
        (["--k", "3-1"], "--k must be a range"),
        (["--k", "0"], "--k must be a range"),
        (["--k", "70"], "--k asks for up to 70 components but the data have 60 rows"),
        (["--methods", "em,magic"], "'magic'"),
        (["--covariance", "VVV2"], "argument --covariance: invalid choice"),
        (["--missing", "drop"], "argument --missing: invalid choice: 'drop'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_option_is_refused_in_one_line(options, fragment, tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text(_plain_csv(X))
    out = tmp_path / "out"
    status, _, stderr = run(["fit", path, "--quiet", "--out", out, *options], capsys)
    assert_refused(status, "", stderr, fragment, out)


def test_missing_file_and_missing_command(tmp_path, capsys):
    status, _, stderr = run(["fit", tmp_path / "nope.csv"], capsys)
    assert_refused(status, "", stderr, "no such file")
    status, _, stderr = run(["fit", tmp_path], capsys)
    assert_refused(status, "", stderr, "is a folder; give the CSV file in it")
    status, _, stderr = run([], capsys)
    assert_refused(status, "", stderr, "required: command")


def test_out_naming_a_file_is_refused_before_reading_or_fitting(tmp_path, capsys, monkeypatch):
    path = tmp_path / "data.csv"
    path.write_text(_plain_csv(X))
    existing = tmp_path / "report.html"
    existing.write_text("keep me")

    def no_fitting(*args, **kwargs):
        raise AssertionError("fitted although --out is a file")

    monkeypatch.setattr(cli.bg, "compare_k", no_fitting)
    for out, fragment in ((existing, "is an existing file"), (existing / "sub", "is a file")):
        status, stdout, stderr = run(["fit", path, "--out", out], capsys)
        assert_refused(status, stdout, stderr, fragment)
        assert stdout == ""  # refused before the file was read
    assert existing.read_text() == "keep me"
    status, _, stderr = run(["demo", "--methods", "em", "--out", existing], capsys)
    assert_refused(status, "", stderr, "is an existing file")


def test_no_successful_fit_exits_1_without_a_report(tmp_path, capsys):
    path = tmp_path / "two_points.csv"  # 2 distinct rows: no K=3 mixture exists
    path.write_text("x,y\n0,0\n1,1\n0,0\n1,1\n0,0\n")
    out = tmp_path / "out"
    status, stdout, stderr = run(["fit", path, "--methods", "em", "--k", "3", "--quiet",
                                  "--out", out], capsys)
    assert status == 1
    assert stderr.count("\n") == 1 and "no fit succeeded" in stderr
    assert "em K=3: ValueError" in stderr and "distinct" in stderr
    assert not out.exists()
    assert "report" not in stdout


# --------------------------------------------------------------------------
# Ctrl-C: exit status 130, no partial output
# --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["compare_k", "report"])
def test_keyboard_interrupt_exits_130_and_leaves_no_output(where, tmp_path, capsys,
                                                           monkeypatch):
    path = tmp_path / "data.csv"
    path.write_text(_plain_csv(X))
    out = tmp_path / "new" / "out"
    real = getattr(cli.bg, where)

    def interrupted(*args, **kwargs):
        if where == "report":  # interrupted half way through writing
            (out / "report_files").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.bg, where, interrupted)
    status, _, stderr = run(["fit", path, "--methods", "em", "--k", "1-2", "--quiet",
                             "--out", out], capsys)
    assert status == 130
    assert stderr == "bayesgmm: interrupted; nothing written\n"
    assert not (tmp_path / "new").exists()
    assert real is not interrupted


def test_sigint_to_the_command_exits_130(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "big.csv"
    pd.DataFrame(rng.normal(size=(20_000, 6)), columns=list("abcdef")).to_csv(path, index=False)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "bayesgmm.cli", "fit", str(path), "--methods", "em",
         "--k", "1-9", "--quiet", "--out", str(out)],  # minutes of work
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            line = proc.stdout.readline()  # printed once the file is read, before fitting
            assert line.startswith("read big.csv"), line + proc.stderr.read()
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr == "bayesgmm: interrupted; nothing written\n"
    assert not out.exists()


# --------------------------------------------------------------------------
# the contract is in --help
# --------------------------------------------------------------------------


def test_fit_works_once_columns_are_chosen(tmp_path, capsys):
    path = tmp_path / "data.csv"
    lines = ["x,y,label,empty"] + [f"{i % 7},{(i * 3) % 11},n{i}," for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert cli.main(["fit", str(path), "--columns", "x,y", "--k", "1-2", "--quiet",
                     "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "BIC (em)" in stdout and "report:" in stdout
    assert (out / "report_files" / "model_selection.csv").exists()


def test_help_states_the_contract(capsys):
    for argv in (["--help"], ["demo", "--help"], ["fit", "--help"]):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--columns", "--sep", "--decimal", "row names", "unique consecutive integers",
                   "Exit status:", "0 the report was written", "1 no fit succeeded",
                   "2 bad input or options", "130 interrupted", "UTF-16",
                   "--out naming an existing file", "--missing {marginalize,error}",
                   "missing at random", "--missing error refuses them",
                   "selected cells are all blank or NA", "it is dropped",
                   "marginalise them too, on PyMC's own"):
        assert phrase in text, phrase


def test_output_piped_into_head_still_writes_the_report(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(_plain_csv(X))
    out = tmp_path / "out"
    command = " ".join(shlex.quote(part) for part in [
        sys.executable, "-m", "bayesgmm.cli", "fit", str(path), "--methods", "em",
        "--k", "1-2", "--quiet", "--out", str(out)])
    # a real shell pipe: head exits after one line; pipefail reports the CLI's own status
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -1"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.startswith("read data.csv")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert (out / "report.html").exists()


# --------------------------------------------------------------------------
# missing values: blank or NA cells
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MISSING_FILES))
def test_missing_error_refuses_blank_or_na_cells_in_one_line(name, tmp_path, capsys):
    # the refusal of every blank cell, today's contract, is now what --missing error asks for
    content, fragment = MISSING_FILES[name]
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    out = tmp_path / "out"
    status, stdout, stderr = run(["fit", path, "--methods", "em", "--k", "1-2", "--quiet",
                                  "--missing", "error", "--out", out], capsys)
    assert_refused(status, stdout, stderr, fragment, out)
    assert "--missing error refuses them" in stderr


@pytest.mark.parametrize("token", ["", "NA", "NaN", "NULL", "#N/A", "n/a", "None", '""'])
def test_blank_or_na_cells_are_fitted_as_missing_values(token, tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text("x,y\n" + "".join(f"{a},{token if i % 10 == 3 else b}\n"
                                      for i, (a, b) in enumerate(X)))
    stdout, summary = fit_ok(path, tmp_path, capsys)
    assert ("missing values: 6 of 120 cells (5.0%) are blank or NA, in y (6 of 60 rows); "
            "6 incomplete row(s) are fitted by EM as missing at random") in stdout
    assert summary.loc["x", "count"] == 60 and summary.loc["y", "count"] == 54
    assert "pick K=2" in stdout or "agree on K=2" in stdout


def test_missing_cells_in_several_columns_are_counted_per_column(tmp_path, capsys):
    path = tmp_path / "data.csv"
    rows = [f"{'' if i in (0, 12, 24, 37, 49) else a},{'NA' if i % 5 == 1 else b}"
            for i, (a, b) in enumerate(X)]  # no row has both cells blank
    path.write_text("x,y\n" + "\n".join(rows) + "\n")
    stdout, _ = fit_ok(path, tmp_path, capsys)
    line = next(line for line in stdout.splitlines() if line.startswith("missing values"))
    assert "17 of 120 cells (14.2%)" in line and "x (5 of 60 rows), y (12 of 60 rows)" in line
    assert "17 incomplete row(s)" in line


def test_missing_cells_match_the_library_fit(tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text(BLANK)
    out = tmp_path / "out"
    status, _, stderr = run(["fit", path, "--methods", "em", "--k", "2", "--quiet",
                             "--out", out], capsys)
    assert status == 0, stderr
    table = pd.read_csv(out / "report_files" / "model_selection.csv", index_col=[0, 1])
    data = X.copy()
    data[3::10, 1] = np.nan
    import bayesgmm as bg

    direct = bg.compare_k(data, [2], methods="em", progressbar=False).table
    assert table.loc[("em", 2), "loglik"] == pytest.approx(direct.loc[("em", 2), "loglik"])
    report = (out / "report.md").read_text()
    assert "## Missing data" in report and "missing at random (MAR)" in report


@pytest.mark.parametrize("methods", ["em,nuts", "advi"])
def test_bayesian_methods_with_missing_cells_are_fitted_too(methods, tmp_path, capsys,
                                                           monkeypatch):
    # BayesGMM marginalises missing entries (on the PyMC graph): the CLI passes the
    # requested methods and the data with NaN to compare_k unchanged
    seen = {}

    def record(X, ks, methods, **kwargs):
        seen["methods"], seen["nan"] = tuple(methods), int(np.isnan(X.to_numpy()).sum())
        raise KeyboardInterrupt  # stop here: nothing fitted, nothing written

    monkeypatch.setattr(cli.bg, "compare_k", record)
    path = tmp_path / "data.csv"
    path.write_text(BLANK)
    out = tmp_path / "out"
    status, _, _ = run(["fit", path, "--methods", methods, "--k", "1-2", "--quiet",
                        "--out", out], capsys)
    assert status == 130 and not out.exists()
    assert seen["methods"] == tuple(methods.split(",")) and seen["nan"] > 0


def test_complete_data_print_no_missing_line(tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text(_plain_csv(X))
    stdout, _ = fit_ok(path, tmp_path, capsys)
    assert "missing values" not in stdout and "dropped" not in stdout


def test_rows_whose_selected_cells_are_all_blank_are_dropped_with_one_note(tmp_path, capsys):
    path = tmp_path / "data.csv"
    rows = [f"{i + 1},{a},{b}" for i, (a, b) in enumerate(X)]
    rows[4] = "5,,"
    rows[9] = "10,NA,NA"
    rows[20] = f"21,,{X[20, 1]}"  # one blank cell: kept, fitted as missing
    path.write_text("id,x,y\n" + "\n".join(rows) + "\n")
    stdout, summary = fit_ok(path, tmp_path, capsys)
    assert ("dropped 2 row(s) whose selected cells are all blank or NA (lines 6, 11): they "
            "carry no information about the mixture") in stdout
    assert "read data.csv: 58 rows" in stdout
    assert "1 of 116 cells (0.9%) are blank or NA, in x (1 of 58 rows)" in stdout
    assert summary.loc["y", "count"] == 58 and summary.loc["x", "count"] == 57


def test_constant_column_with_blanks_is_refused_naming_the_non_blank_rows(tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text("x,c\n" + "".join(f"{a},{'' if i % 4 == 0 else 3.5}\n"
                                      for i, a in enumerate(X[:, 0])))
    status, stdout, stderr = run(["fit", path, "--k", "1-2", "--quiet", "--out",
                                  tmp_path / "out"], capsys)
    assert_refused(status, stdout, stderr, "column 'c' is constant (every non-blank row is "
                                           "3.5)", tmp_path / "out")


def test_a_column_with_no_values_is_still_refused(tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text("x,y,empty\n" + "".join(f"{a},{b},NA\n" for a, b in X))
    status, stdout, stderr = run(["fit", path, "--k", "1-2", "--quiet", "--out",
                                  tmp_path / "out"], capsys)
    assert_refused(status, stdout, stderr, "column 'empty' holds no numbers (all 60 cells "
                                           "blank or NA)", tmp_path / "out")
