"""Rows of docs/robustness.md that no other test checked, each checked as the row states it.

EM fits, saved files and in-process CLI calls only (no Bayesian fit): a few seconds.
"""

import bz2
import errno
import lzma
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import bayesgmm as bg
from bayesgmm import cli, results
from bayesgmm import reporting as report_module
from bayesgmm.exceptions import ConvergenceWarning, DataWarning, DifferentModelError

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def em_fit():
    return bg.EMGMM(2, random_state=0).fit(bg.datasets.load_faithful())


# --------------------------------------------------------------------------
# Hostile input (EMGMM): the message says what the row says
# --------------------------------------------------------------------------

_NAN_INF = np.array([[0.0, np.nan], [1.0, np.inf], [2.0, 1.0], [np.nan, 3.0]])


@pytest.mark.parametrize(
    ("X", "k", "error", "fragments"),
    [
        (_NAN_INF, 1, ValueError,
         ["2 NaN and 1 inf value(s)", "3 row(s) (first: [0, 1, 3])", "column(s) ['0', '1']",
          "Infinite values are never accepted"]),
        (np.array([[1.0, 2.0]]), 1, ValueError, ["needs at least 2 samples"]),
        (np.arange(10.0), 1, ValueError, ["X.reshape(-1, 1)"]),
        (pd.Series(np.arange(10.0)), 1, ValueError, ["series.to_frame()"]),
        (RNG.normal(size=(3, 2)), 5, ValueError, ["n_components=5", "only 3 samples"]),
        (np.ones((20, 2)), 1, ValueError, ["['column 0', 'column 1']", "zero variance"]),
        (pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0],
                       "s": pd.array(list("abcd"), dtype="string"),
                       "c": pd.Categorical(list("xyxy"))}), 1, ValueError,
         ["'s' (string)", "'c' (category)"]),
        (sp.csr_matrix(np.eye(5)), 1, TypeError, ["X.toarray()"]),
        (sp.csr_array(np.eye(5)), 1, TypeError, ["X.toarray()"]),
    ],
    ids=["nan-inf-rows-columns", "single-row", "1-d", "series", "k-above-rows",
         "all-identical", "string-and-category", "sparse-matrix", "sparse-array"],
)
def test_error_message_says_what_the_row_says(X, k, error, fragments):
    with pytest.raises(error) as info:
        bg.EMGMM(k, random_state=0).fit(X)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_reg_covar_warning_starts_at_one_thousandth_of_a_variance():
    # reg_covar = 1e-6; a column of +-a has variance a**2
    def column_of_variance(v):
        return np.tile([-np.sqrt(v), np.sqrt(v)], 50)

    other = np.linspace(0.0, 1.0, 100)
    swamped = np.column_stack([column_of_variance(0.9e-3), other])  # 1e-6 is 0.11 %
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(DataWarning, match="at least 0.1% of the variance") as record:
            bg.EMGMM(1, random_state=0).fit(swamped)
    message = str(record[0].message)
    assert "'x0'" in message and "'x1'" not in message
    assert "Standardise X" in message and "lower reg_covar" in message
    fine = np.column_stack([column_of_variance(1.1e-3), other])  # 1e-6 is 0.09 %
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        bg.EMGMM(1, random_state=0).fit(fine)


def test_duplicated_rows_collapse_to_the_reg_covar_floor():
    X = np.vstack([np.repeat([[1.0, 2.0]], 100_000, axis=0), RNG.normal(size=(60, 2))])
    with pytest.warns(ConvergenceWarning, match="collapsed"):
        model = bg.EMGMM(2, random_state=0).fit(X)
    heavy = int(np.argmax(model.weights_))
    eigenvalues = np.linalg.eigvalsh(model.covariances_[heavy])
    assert np.all(eigenvalues >= model.reg_covar * (1 - 1e-9))
    assert np.all(eigenvalues <= 2 * model.reg_covar)  # the collapse criterion's factor 2


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32, np.float16])
def test_low_precision_input_is_the_fit_of_its_float64_conversion(dtype, blobs):
    X = (blobs.X * 100).astype(dtype)
    model = bg.EMGMM(3, random_state=0).fit(X)
    reference = bg.EMGMM(3, random_state=0).fit(X.astype(np.float64))
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(model, name), getattr(reference, name))


@pytest.mark.parametrize("layout", ["c", "fortran", "strided"])
def test_the_input_is_never_written(layout, blobs):
    X = {"c": blobs.X.copy(), "fortran": np.asfortranarray(blobs.X),
         "strided": np.repeat(blobs.X, 2, axis=1)[:, ::2]}[layout]
    frame = pd.DataFrame(blobs.X.copy(), columns=["a", "b"])
    before, frame_before = X.copy(), frame.copy()
    model = bg.EMGMM(3, random_state=0).fit(X)
    model.predict(X)
    model.predict_proba(X)
    model.score_samples(X)
    bg.EMGMM(3, random_state=0).fit(frame)
    np.testing.assert_array_equal(X, before)
    pd.testing.assert_frame_equal(frame, frame_before)


def test_failed_cholesky_names_the_remedies():
    t = np.random.default_rng(0).normal(size=50)
    X = np.column_stack([t, 2 * t])  # on a line: singular without a floor
    with pytest.raises(ValueError) as info:
        bg.EMGMM(1, reg_covar=0.0, random_state=0).fit(X)
    message = str(info.value)
    for fragment in ("decrease the number of components", "increase reg_covar (now 0)",
                     "scale the input data"):
        assert fragment in message


# --------------------------------------------------------------------------
# Interrupted writes: the previous file stays, nothing half-written is left
# --------------------------------------------------------------------------


def test_interrupted_to_netcdf_keeps_the_old_file(em_fit, tmp_path, monkeypatch):
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    before = path.read_bytes()

    def ctrl_c(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", ctrl_c)  # the new bytes are in the temporary file
    with pytest.raises(KeyboardInterrupt):
        em_fit.result_.to_netcdf(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


def test_interrupted_report_keeps_the_old_report(em_fit, tmp_path, monkeypatch):
    html = bg.report(em_fit.result_, tmp_path / "fit.html")
    files = tmp_path / "fit_files"
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*")
              if p.is_file()}

    def ctrl_c(self, files_dir):
        raise KeyboardInterrupt

    # the HTML and the figures are already in the staging folder when Ctrl-C arrives
    monkeypatch.setattr(report_module._Document, "to_markdown", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        bg.report(em_fit.result_, html)
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*")
             if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.html", "fit.md", files.name]


# --------------------------------------------------------------------------
# Saved files
# --------------------------------------------------------------------------


def test_damaged_bytes_are_refused_before_hdf5_reads_them(em_fit, tmp_path, monkeypatch):
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    import h5netcdf

    def never(*args, **kwargs):  # pragma: no cover - must not run
        raise AssertionError("the HDF5 library was given damaged bytes")

    monkeypatch.setattr(h5netcdf, "File", never)
    with pytest.raises(DifferentModelError, match="SHA-256 digest written at its end"):
        bg.load(path)


def test_a_file_without_its_last_line_loads_if_its_contents_are_unchanged(em_fit, tmp_path):
    # what a rewrite by an HDF5 tool (h5repack, nccopy) leaves: the HDF5 data, no last line
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    body, digest = results._split_trailer(path.read_bytes())
    assert digest is not None
    path.write_bytes(body)
    back = bg.load(path)
    for name in ("weights", "means", "covariances", "responsibilities"):
        assert getattr(back, name).identical(getattr(em_fit.result_, name))
    # without the last line the contents digest still refuses changed numbers
    import h5netcdf

    with h5netcdf.File(path, "a") as handle:
        handle.groups["bayesgmm"].variables["weights"][0] += 1e-12
    body, digest = results._split_trailer(path.read_bytes())
    assert digest is None
    with pytest.raises(DifferentModelError, match=r"contents of .* do not match the SHA-256"):
        bg.load(path)


def test_no_permission_raises_oserror_naming_the_path(em_fit, tmp_path, monkeypatch):
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    before = path.read_bytes()
    real_open = os.open

    def refused(file, flags, *args, **kwargs):  # as in a folder without write permission
        if str(file).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(PermissionError) as info:
        em_fit.result_.to_netcdf(path)
    assert info.value.errno == errno.EACCES
    assert info.value.filename == str(path) and ".tmp" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

_X = np.round(np.r_[RNG.normal(0, 1, (30, 2)), RNG.normal(6, 1, (30, 2))], 3)
_PLAIN = "x,y\n" + "".join(f"{a},{b}\n" for a, b in _X)


def _run(path, capsys, *options):
    out = path.parent / "out"
    status = cli.main(["fit", str(path), "--methods", "em", "--k", "1-2", "--quiet",
                       "--out", str(out), *options])
    captured = capsys.readouterr()
    return status, captured.out, captured.err, out


def _refused(path, capsys, fragment, *options):
    status, _, stderr, out = _run(path, capsys, *options)
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith("bayesgmm: error: "), stderr
    assert "Traceback" not in stderr
    assert fragment in stderr, stderr
    assert not out.exists()
    return stderr


def _cells(column, value_at_8):
    return "x,y\n" + "".join(f"{a},{value_at_8 if i == 7 else b}\n"
                             for i, (a, b) in enumerate(column))


CLI_FILES = {
    "bzip2": (bz2.compress(_PLAIN.encode()), "is bzip2-compressed, not a CSV text file; "
                                             "decompress it first (bunzip2 -k)"),
    "xz": (lzma.compress(_PLAIN.encode()), "is xz-compressed, not a CSV text file; "
                                           "decompress it first (unxz -k)"),
    "xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "is an Excel .xls or other OLE "
                                                             "file, not a CSV text file"),
    "pdf": (b"%PDF-1.4\n" + bytes(500), "is a PDF document, not a CSV text file"),
    "hdf5": (b"\x89HDF\r\n\x1a\n" + bytes(500), "is an HDF5/netCDF file, not a CSV text file"),
    "utf32-bom": (_PLAIN.encode("utf-32"), "is UTF-32 text, not a CSV text file; "
                                           "save it as UTF-8 CSV"),
    "utf32-no-bom": (_PLAIN.encode("utf-32-le"), "holds binary data (NUL bytes), not CSV text"),
    "control-characters": (("x,y\n" + "".join(f"{a},\x01{b}\n" for a, b in _X)).encode(),
                           "holds control characters (binary data?), not CSV text"),
    "minus-inf": ((_PLAIN + "1.0,-inf\n").encode(),
                  "column 'y' has 1 infinite value(s) (e.g. '-inf' on line 62)"),
    "1e400": ((_PLAIN + "1.0,1e400\n").encode(),
              "column 'y' has 1 infinite value(s) (e.g. '1e400' on line 62)"),
    **{f"na-{token}": (_cells(_X, token).encode(),
                       "column 'y' has blank or NA cells in 1 of 60 rows (lines 9)")
       for token in ('""', "NaN", "NULL", "#N/A")},
    "column-with-no-values": (("x,y,empty\n" + "".join(f"{a},{b},\n" for a, b in _X)).encode(),
                              "column 'empty' holds no numbers (all 60 cells blank or NA); "
                              "leave it out with --columns"),
    "quoted-decimal-commas": (("x,y\n" + "".join(f'"{a:.3f}","{b:.3f}"\n'.replace(".", ",")
                                                 for a, b in _X)).encode(),
                              "for decimal commas pass --decimal ,"),
    "several-problems": (("a,b,x\n" + "".join(f"t{i},,{v}\n" for i, v in enumerate(_X[:, 0])))
                         .encode(), "column 'a' is not numeric (e.g. 't0' on line 2); choose "
                                    "numeric columns with --columns (e.g. --columns x)"),
}


@pytest.mark.parametrize("name", list(CLI_FILES))
def test_cli_refuses_the_file_as_the_row_says(name, tmp_path, capsys):
    content, fragment = CLI_FILES[name]
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    # blank and NA cells are missing values by default; --missing error refuses them
    options = ("--missing", "error") if name.startswith("na-") else ()
    _refused(path, capsys, fragment, *options)


def test_cli_reads_decimal_commas_in_a_comma_separated_file_with_decimal_comma(tmp_path,
                                                                              capsys):
    path = tmp_path / "data.csv"
    path.write_bytes(CLI_FILES["quoted-decimal-commas"][0])
    status, stdout, stderr, out = _run(path, capsys, "--decimal", ",")
    assert status == 0, stderr
    assert "separator ',', decimal ','" in stdout
    summary = pd.read_csv(out / "report_files" / "data_summary.csv", index_col=0)
    np.testing.assert_allclose(summary["mean"], _X.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--draws", "0"], "argument --draws: must be at least 1, got 0 "
                           "(see bayesgmm fit --help)"),
        (["--sep", "ab"], "argument --sep: must be one separator character"),
        (["--decimal", ";"], "argument --decimal: invalid choice: ';'"),
        (["--covariance", "VVV2"], "argument --covariance: invalid choice: 'VVV2'"),
    ],
)
def test_cli_argparse_errors_end_with_the_help_pointer(options, message, tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text(_PLAIN)
    stderr = _refused(path, capsys, message, *options)
    assert stderr.endswith("(see bayesgmm fit --help)\n")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--k", "3-1"], "--k must be a range of positive numbers low-high, got '3-1'"),
        (["--methods", "em,magic"], "--methods: ['magic'] not known; choose from "),
        (["--bogus"], "unrecognized arguments: --bogus (see bayesgmm --help)"),
    ],
)
def test_cli_k_methods_and_unknown_option_messages(options, message, tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_text(_PLAIN)
    _refused(path, capsys, message, *options)


@pytest.mark.parametrize("n_rows, left_out", [(2, False), (3, True)])
def test_cli_id_columns_need_at_least_3_rows(n_rows, left_out, tmp_path, capsys):
    path = tmp_path / "data.csv"
    rows = [f"{i + 1},{a},{b}" for i, (a, b) in enumerate(_X[[0, 30, 1][:n_rows]])]
    path.write_text("id,x,y\n" + "\n".join(rows) + "\n")
    status, stdout, stderr, _ = _run(path, capsys, "--k", "1")
    assert status == 0, stderr
    assert ("left out 'id'" in stdout) == left_out


def test_cli_errors_that_are_not_the_users_keep_their_traceback(tmp_path, capsys,
                                                                monkeypatch):
    path = tmp_path / "data.csv"
    path.write_text(_PLAIN)

    def bug(*args, **kwargs):
        raise RuntimeError("a bug in bayesgmm")

    monkeypatch.setattr(cli.bg, "compare_k", bug)
    with pytest.raises(RuntimeError, match="a bug in bayesgmm"):  # not a one-line exit 2
        _run(path, capsys)
    assert not (tmp_path / "out").exists()
