"""Command line: ``bayesgmm demo`` and ``bayesgmm fit DATA.csv``.

A thin layer over the public API. The contract (what is read how, what is
left out, the exit statuses) is in :data:`FIT_EPILOG`, printed by
``bayesgmm fit --help``, and in docs/robustness.md:

- 0: the report was written;
- 1: no fit succeeded, so no report was written;
- 2: bad input or options: one line on stderr, nothing written, no fitting;
- 130: interrupted with Ctrl-C: one line on stderr, no partial output.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import numpy as np
import pandas as pd

import bayesgmm as bg
from bayesgmm._constants import COVARIANCE_TYPES, MCLUST_MODELS
from bayesgmm.selection import METHODS

__all__ = ["EXIT_INTERRUPTED", "EXIT_NO_FIT", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
#: No (method, K) fit succeeded; no report is written.
EXIT_NO_FIT = 1
#: Bad input or options; nothing is written.
EXIT_USAGE = 2
#: Interrupted (Ctrl-C), as shells report SIGINT (128 + 2).
EXIT_INTERRUPTED = 130

#: Separators the sniffer tries, in order of preference on ties.
_SEPARATORS = (",", ";", "\t", "|", " ")
_SEP_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'", " ": "space"}
#: Cells read as missing values (NaN), fitted as missing at random unless --missing error.
_MISSING = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "#N/A", "None"})
_BOOLS = frozenset({"true", "false"})
_COMMA_DECIMAL = re.compile(r"^[+-]?(\d+,\d*|,\d+)([eE][+-]?\d+)?$")
_POINT_DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?$")
_THOUSANDS_POINT = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d*)?$")
_SEP_DIRECTIVE = re.compile(r"^sep=(.)\r?\n")
_INTEGER = re.compile(r"^[+-]?\d+$")
#: Default ``--methods`` of ``bayesgmm fit`` and ``bayesgmm demo``.
FIT_METHODS = "em"
DEMO_METHODS = "em,advi,nuts"
#: What ``--missing`` accepts: fit blank or NA cells as missing at random, or refuse them.
MISSING_CHOICES = ("marginalize", "error")
#: Lines the separator and decimal mark are sniffed from.
_SNIFF_LINES = 100
#: (leading bytes, what the file is, what to do).
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip -k)"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?)", "export the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "an Excel .xls or other OLE file", "export the sheet as CSV"),
    (b"BZh", "bzip2-compressed", "decompress it first (bunzip2 -k)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz -k)"),
    (b"%PDF", "a PDF document", "export the table as CSV"),
    (b"\x89HDF", "an HDF5/netCDF file", "read it with bayesgmm.load or xarray"),
    (b"\x00\x00\xfe\xff", "UTF-32 text", "save it as UTF-8 CSV"),
    (b"\xff\xfe\x00\x00", "UTF-32 text", "save it as UTF-8 CSV"),
    (b"\xff\xfe", "UTF-16 text", "save it as UTF-8 CSV (Excel: 'CSV UTF-8')"),
    (b"\xfe\xff", "UTF-16 text", "save it as UTF-8 CSV (Excel: 'CSV UTF-8')"),
)

FIT_EPILOG = """\
How DATA is read:
  - UTF-8 text (a byte-order mark is fine), or Windows-1252 if it is not
    UTF-8 (one line says so). gzip, zip/Excel, UTF-16 and other binary files
    are refused: decompress or export them as UTF-8 CSV first.
  - The first row is the header; names lose surrounding spaces, so ' x ' is
    selected by --columns x. Lines with no values at all are skipped.
  - The separator (, ; tab | or space) and the decimal mark (. or ,) are
    sniffed from the first 100 lines; --sep and --decimal override them.
    European files (';' with decimal commas, thousands points as in
    1.234,5), Excel's 'sep=;' first line and R's write.table (space
    separated, one header field fewer than the rows) are read as numbers.
    Decimal commas in a ',' file need --decimal ,. The line 'read DATA: ...'
    says what was used.

Missing values (blank cells and NA, N/A, NaN, NULL, #N/A, None):
  - By default (--missing marginalize) they are missing values, assumed
    missing at random, and EM fits the observed-data likelihood; one line
    says how many cells are missing in which columns. --missing error
    refuses them instead.
  - A row whose selected cells are all blank or NA carries no information
    about the mixture: it is dropped, and one line says which lines.
  - The Bayesian methods (advi, nuts) marginalise them too, on PyMC's own
    graph: slower to start than on complete data (the fast kernel handles
    complete data only, and says so in one warning).

Left out unless --columns names them (one line says what and why):
  - an unnamed first column of unique values: row names (R's write.csv,
    pandas' to_csv index);
  - a column of unique consecutive integers, in any order (e.g. 1..N): an id;
  - unnamed columns with no values (trailing separators).

Refused in one line on stderr, with exit status 2, before any fitting and
with nothing written: a missing, empty, compressed, binary or UTF-16 file;
a header of numbers (no header row); rows whose number of fields differs
from the header's; text or TRUE/FALSE columns; columns with no numbers;
blank or NA cells with --missing error; infinite values; constant columns;
fewer rows than components; --columns naming no column or an unknown one;
bad --k or --methods; --draws or --chains below 1; --tune or --seed below 0;
--out naming an existing file.

Exit status:
  0    the report was written to --out (report.html, report.md, tables).
  1    no fit succeeded: one line on stderr with the first failure; no report.
  2    bad input or options: one line on stderr; nothing written.
  130  interrupted (Ctrl-C): one line on stderr; no partial output (an --out
       folder created by this run is removed).
"""


class UsageError(Exception):
    """Bad input from the command line user (exit status 2)."""


class NoFitError(Exception):
    """No fit succeeded (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (a :class:`UsageError`)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


class CSVData(NamedTuple):
    """A CSV file read by :func:`read_table`.

    Attributes
    ----------
    frame : pandas.DataFrame
        The features, float64, one column per feature.
    sep : str
        The separator used.
    decimal : str
        The decimal mark used.
    notes : list of str
        One-line notes for the user (encoding, columns left out).
    """

    frame: pd.DataFrame
    sep: str
    decimal: str
    notes: list[str]


def parse_k_range(text: str) -> list[int]:
    """Parse ``"3"`` or ``"1-6"`` into a list of component counts.

    Parameters
    ----------
    text : str
        One number or a range ``low-high``.

    Returns
    -------
    list of int
        The component counts.

    Examples
    --------
    >>> parse_k_range("2-4")
    [2, 3, 4]
    """
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-", 1))
        else:
            low = high = int(text)
    except ValueError:
        raise UsageError(f"--k must be a number or a range like 1-6, got {text!r}") from None
    if low < 1 or high < low:
        raise UsageError(f"--k must be a range of positive numbers low-high, got {text!r}")
    return list(range(low, high + 1))


def parse_methods(text: str) -> tuple[str, ...]:
    """Parse ``"em,advi,nuts"`` into method names, rejecting unknown ones.

    Parameters
    ----------
    text : str
        Comma-separated method names.

    Returns
    -------
    tuple of str
        The methods.

    Examples
    --------
    >>> parse_methods("em, nuts")
    ('em', 'nuts')
    """
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise UsageError(f"--methods: {unknown or text!r} not known; choose from "
                         f"{','.join(METHODS)}")
    return methods


def parse_columns(text: str | None) -> list[str] | None:
    """Parse ``--columns``: comma-separated names, stripped of spaces.

    Parameters
    ----------
    text : str or None
        The option's value; ``None`` means every usable column.

    Returns
    -------
    list of str or None
        The names, in order.

    Examples
    --------
    >>> parse_columns(" x , y")
    ['x', 'y']
    """
    if text is None:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise UsageError(f"--columns names no column (got {text!r}); give comma-separated "
                         "header names, e.g. --columns x,y")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--columns names {twice} more than once")
    return names


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _separator(text: str) -> str:
    """An argparse ``type`` for ``--sep``: one character, or ``tab``/``space``."""
    value = {"tab": "\t", "\\t": "\t", "space": " "}.get(text.lower(), text)
    if len(value) != 1 or value in "\"\r\n" or value.isalnum() or value == ".":
        raise argparse.ArgumentTypeError(
            f"must be one separator character such as , ; | or tab, got {text!r}")
    return value


# --------------------------------------------------------------------------
# reading the file
# --------------------------------------------------------------------------


def _read_text(file: Path, notes: list[str]) -> str:
    """The file's text; refuses empty, compressed, binary and UTF-16 files."""
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {file}: {err.strerror or err}") from None
    for magic, what, fix in _MAGIC:
        if raw.startswith(magic):
            raise UsageError(f"{file} is {what}, not a CSV text file; {fix}")
    head = raw[:8192]
    nul_even, nul_odd = head[0::2].count(0), head[1::2].count(0)
    if min(nul_even, nul_odd) == 0 and max(nul_even, nul_odd) > len(head) // 4:
        raise UsageError(f"{file} looks like UTF-16 text (no byte-order mark), not a CSV "
                         "text file; save it as UTF-8 CSV")
    if b"\x00" in head:
        raise UsageError(f"{file} holds binary data (NUL bytes), not CSV text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            raise UsageError(f"{file} is neither UTF-8 nor Windows-1252 text (binary?); "
                             "save it as UTF-8 CSV") from None
        notes.append(f"{file.name} is not UTF-8: read it as Windows-1252")
    if any(ch < " " and ch not in "\t\r\n\f" for ch in text[:8192]):
        raise UsageError(f"{file} holds control characters (binary data?), not CSV text")
    if not text.strip():
        raise UsageError(f"{file} is empty")
    return text


def _blank(row: list[str]) -> bool:
    return all(not cell.strip() for cell in row)


def _rows(lines, sep: str) -> list[tuple[int, list[str]]]:
    """Non-blank rows with their line numbers (csv quoting rules)."""
    if sep == " ":
        lines = (line.strip() + "\n" for line in lines)
    reader = csv.reader(lines, delimiter=sep, strict=True, skipinitialspace=sep == " ")
    out = []
    for row in reader:
        if not _blank(row):
            out.append((reader.line_num, row))
    return out


def _sniff_separator(sample: list[str]) -> str:
    """The separator giving every sampled line the header's number of fields.

    R's ``write.table`` writes one header field fewer than each row (no name
    over the row names); that layout is accepted for two or more named
    columns. A single column (no separator gives any line two fields) is read
    with a separator absent from the sample, so decimal commas stay inside
    their cells.
    """
    best, best_score = None, (-1.0,)
    single = True  # no separator splits the header
    for rank, sep in enumerate(_SEPARATORS):
        try:
            rows = [row for _, row in _rows(sample, sep)]
        except csv.Error:
            single = False
            continue
        if not rows:
            continue
        single = single and len(rows[0]) == 1
        header, body = len(rows[0]), [len(r) for r in rows[1:]]
        exact = all(n == header for n in body)
        short = header >= 2 and bool(body) and all(n == header + 1 for n in body)
        if header < 2 or (sep == " " and not (exact or short)):
            continue  # spaces inside text would look like a ragged file
        agree = np.mean([n == header for n in body]) if body else 1.0
        score = (2.0 if exact else 1.0 if short else 0.0, agree, header, -rank)
        if score > best_score:
            best, best_score = sep, score
    if best is not None:
        return best
    if single:
        text = "".join(sample)
        return next((sep for sep in _SEPARATORS if sep not in text), ",")
    return ","


def _sniff_decimal(sample_rows: list[list[str]], sep: str, file: Path) -> str:
    """``","`` if the sampled cells of a non-comma file hold decimal commas and no points.

    In a comma-separated file a quoted ``"1,234"`` is more likely a thousands
    separator, so decimal commas there need ``--decimal ,``.
    """
    if sep == ",":
        return "."
    cells = [c.strip() for row in sample_rows for c in row]
    comma = next((c for c in cells if _COMMA_DECIMAL.match(c)), None)
    if comma is None:
        return "."
    point = next((c for c in cells if _POINT_DECIMAL.match(c)), None)
    if point is not None:
        raise UsageError(f"{file} mixes decimal commas ({comma!r}) and decimal points "
                         f"({point!r}); say which is meant with --decimal , or --decimal .")
    return ","


def _number_text(cell: str, decimal: str) -> str:
    """A cell written with ``decimal`` as text that :func:`pandas.to_numeric` reads."""
    if decimal != ",":
        return cell
    if _THOUSANDS_POINT.match(cell):
        cell = cell.replace(".", "")  # 1.234,5
    elif "." in cell:
        return "not a number"
    return cell.replace(",", ".")


def _parse_column(name: str, cells: list[str], lines: list[int], decimal: str,
                  sep: str, missing_ok: bool = False) -> tuple[np.ndarray | None, str | None]:
    """Numbers of one column, or ``None`` and the one-line reason it cannot be used.

    Blank or NA cells are NaN when ``missing_ok``, else the reason to refuse the column.
    """
    cells = [c.strip() for c in cells]
    n = len(cells)
    missing = np.array([c in _MISSING for c in cells])
    if missing.all():
        return None, (f"column {name!r} holds no numbers (all {n} cells blank or NA); "
                      "leave it out with --columns")
    present = [c for c, m in zip(cells, missing, strict=True) if not m]
    if all(c.lower() in _BOOLS for c in present):
        return None, (f"column {name!r} holds TRUE/FALSE values, not measurements; "
                      "leave it out with --columns (or recode it as 0/1 if it is meant)")
    text = pd.Series([_number_text(c, decimal) for c in cells], dtype=object)
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, copy=True)
    bad = np.flatnonzero(~missing & np.isnan(values))
    if bad.size:
        example = cells[bad[0]]
        hint = ""
        if decimal == "." and _COMMA_DECIMAL.match(example):
            hint = "; for decimal commas pass --decimal ,"
            if sep == ",":
                hint += " (or remove the thousands separators)"
        elif decimal == "," and _POINT_DECIMAL.match(example):
            hint = "; the file was read with decimal commas: pass --decimal . if points are meant"
        return None, (f"column {name!r} is not numeric (e.g. {example!r} on line "
                      f"{lines[bad[0]]}){hint}; choose numeric columns with --columns")
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        return None, (f"column {name!r} has {infinite.size} infinite value(s) (e.g. "
                      f"{cells[infinite[0]]!r} on line {lines[infinite[0]]}); remove or "
                      "replace them")
    if missing.any() and not missing_ok:
        where = ", ".join(str(lines[i]) for i in np.flatnonzero(missing)[:5])
        more = ", ..." if missing.sum() > 5 else ""
        return None, (f"column {name!r} has blank or NA cells in {int(missing.sum())} of {n} "
                      f"rows (lines {where}{more}) and --missing error refuses them: drop "
                      "those rows or leave the column out with --columns (without --missing "
                      "error, EM fits them as missing at random)")
    values[missing] = np.nan
    present_values = values[~missing]
    if n > 1 and np.ptp(present_values) == 0:
        rows = "every non-blank row" if missing.any() else "every row"
        return None, (f"column {name!r} is constant ({rows} is {present_values[0]:g}) and "
                      "cannot separate clusters; leave it out with --columns")
    return values, None


def _is_id(cells: list[str]) -> bool:
    """Unique consecutive integers (in any order), at least 3 of them."""
    cells = [c.strip() for c in cells]
    if len(cells) < 3 or not all(_INTEGER.match(c) for c in cells):
        return False
    values = np.sort(np.array([int(c) for c in cells]))
    return bool(np.array_equal(values, np.arange(values[0], values[0] + len(values))))


def read_table(path: str, columns: str | None = None, *, sep: str | None = None,
               decimal: str | None = None, missing: str = "marginalize") -> CSVData:
    """Read a CSV file with a header as users write them, and keep the features.

    Parameters
    ----------
    path : str
        The file.
    columns : str, optional
        Comma-separated header names to use (``--columns``); by default
        every column except row names, ids and empty unnamed columns.
    sep : str, optional
        Separator; sniffed from the first 100 lines by default.
    decimal : {".", ","}, optional
        Decimal mark; sniffed by default.
    missing : {"marginalize", "error"}, default="marginalize"
        Blank or NA cells: NaN in ``frame`` (rows whose selected cells are
        all missing are dropped, with a note), or refused (``"error"``).

    Returns
    -------
    CSVData
        ``frame`` (float64 features, NaN for missing cells), ``sep``,
        ``decimal`` and ``notes``.

    Raises
    ------
    UsageError
        With a one-line message, for anything that cannot be fitted as it is.
    """
    file = Path(path)
    if file.is_dir():
        raise UsageError(f"{path} is a folder; give the CSV file in it")
    if not file.is_file():
        raise UsageError(f"no such file: {path}")
    wanted = parse_columns(columns)
    notes: list[str] = []
    text = _read_text(file, notes)
    directive = _SEP_DIRECTIVE.match(text)
    if directive:  # Excel's "sep=;" first line
        text = "\n" + text[directive.end():]  # keeps line numbers
        sep = sep or directive.group(1)
    head = text[:1 << 16].splitlines()[:_SNIFF_LINES]
    if sep is None:
        sep = _sniff_separator(head)
    try:
        rows = _rows(io.StringIO(text, newline=""), sep)
    except csv.Error as err:
        raise UsageError(f"{file} is not valid CSV ({err}); check its quotes") from None
    if len(rows) < 2:
        raise UsageError(f"{path} has a header but no rows")
    header = [h.strip() for h in rows[0][1]]
    numeric = [h for h in header if _INTEGER.match(h) or _POINT_DECIMAL.match(h)
               or _COMMA_DECIMAL.match(h)]
    if len(numeric) == len(header) and not all(_INTEGER.match(h) for h in header):
        raise UsageError(f"the first row of {path} is numbers ({', '.join(header[:3])}"
                         f"{', ...' if len(header) > 3 else ''}), not column names; "
                         "add a header row")
    body = rows[1:]
    widths = {len(row) for _, row in body}
    if len(header) >= 2 and widths == {len(header) + 1}:
        header = ["", *header]  # R's write.table: no header field over the row names
    ragged = [(line, len(row)) for line, row in body if len(row) != len(header)]
    if ragged:
        line, width = ragged[0]
        raise UsageError(
            f"{path}: {len(ragged)} row(s) do not have the header's {len(header)} fields "
            f"(line {line} has {width}; separator {_SEP_NAMES.get(sep, repr(sep))}); "
            "fix the file, or pass --sep if the separator is wrong")
    if decimal is None:
        decimal = _sniff_decimal([row for _, row in body[:_SNIFF_LINES]], sep, file)
    lines = [line for line, _ in body]
    cols = [[row[j] for _, row in body] for j in range(len(header))]
    named = {}
    for j, name in enumerate(header):
        if name and name in named:
            raise UsageError(f"the header names column {name!r} twice (fields {named[name] + 1} "
                             f"and {j + 1}); rename one")
        named.setdefault(name, j)
    left_out: list[str] = []
    if wanted is not None:
        unknown = [c for c in wanted if c not in named]
        if unknown:
            shown = [h for h in header if h]
            raise UsageError(f"--columns: {unknown} not in {path} (has {shown})")
        chosen = [(c, named[c]) for c in wanted]
    else:
        chosen = []
        for j, name in enumerate(header):
            cells = [c.strip() for c in cols[j]]
            if not name and all(c in _MISSING for c in cells):
                left_out.append(f"empty unnamed field {j + 1} (trailing separators?)")
            elif not name and j == 0 and len(set(cells)) == len(cells):
                left_out.append("the unnamed first column (row names)")
            elif _is_id(cells):
                what = repr(name) if name else f"unnamed field {j + 1}"
                left_out.append(f"{what} (unique consecutive integers "
                                f"{min(map(int, cells))}..{max(map(int, cells))}: an id)")
            else:
                chosen.append((name or f"column {j + 1}", j))
        if not chosen:
            raise UsageError(f"{path} has no columns left to fit after leaving out "
                             f"{'; '.join(left_out)}; name columns with --columns")
    data, problems = {}, []
    for name, j in chosen:
        values, problem = _parse_column(name, cols[j], lines, decimal, sep,
                                        missing_ok=missing != "error")
        if problem:
            problems.append(problem)
        else:
            data[name] = values
    if problems:
        usable = ",".join(data)
        fix = f" (e.g. --columns {usable})" if wanted is None and usable else ""
        raise UsageError(problems[0] + fix)
    if left_out:
        keep = "" if all(w.startswith("empty") for w in left_out) else (
            "; name a column in --columns to keep it")
        notes.append(f"left out {'; '.join(left_out)}{keep}")
    frame = pd.DataFrame(data, dtype=float)
    empty = frame.isna().all(axis=1).to_numpy()
    if empty.any():
        where = ", ".join(str(lines[i]) for i in np.flatnonzero(empty)[:5])
        more = ", ..." if empty.sum() > 5 else ""
        notes.append(f"dropped {int(empty.sum())} row(s) whose selected cells are all blank "
                     f"or NA (lines {where}{more}): they carry no information about the "
                     "mixture")
        frame = frame.loc[~empty].reset_index(drop=True)
    return CSVData(frame, sep, decimal, notes)


def describe_missing(frame: pd.DataFrame) -> str | None:
    """One line counting the missing cells per column, or ``None`` if there are none.

    Parameters
    ----------
    frame : pandas.DataFrame
        The features, NaN for missing cells.

    Returns
    -------
    str or None
        E.g. ``"missing values: 6 of 120 cells (5.0%) are blank or NA, in y (6 of
        60 rows); ..."``.

    Examples
    --------
    >>> describe_missing(pd.DataFrame({"x": [1.0, 2.0], "y": [np.nan, 1.0]}))[:46]
    'missing values: 1 of 4 cells (25.0%) are blank'
    """
    counts = frame.isna().sum()
    total = int(counts.sum())
    if total == 0:
        return None
    per_column = ", ".join(f"{name} ({int(c)} of {len(frame)} rows)"
                           for name, c in counts.items() if c)
    incomplete = int(frame.isna().any(axis=1).sum())
    return (f"missing values: {total} of {frame.size} cells ({100 * total / frame.size:.1f}%) "
            f"are blank or NA, in {per_column}; {incomplete} incomplete row(s) are fitted by "
            "EM as missing at random (--missing error refuses them)")


# --------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------


def check_out(out: str) -> Path:
    """Refuse an ``--out`` that cannot become a report folder, before any fitting.

    Parameters
    ----------
    out : str
        The ``--out`` option.

    Returns
    -------
    pathlib.Path
        The folder (not created yet).
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out: {out} is an existing file; give a folder for the report "
                         "(report.html, report.md and tables)")
    ancestor = folder.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"--out: {ancestor} is a file, so {out} cannot be a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"--out: no permission to write in {ancestor}")
    return folder


def _say(text: str) -> None:
    """Print a line of output; a closed pipe (``| head``) silences the rest, not the run."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = open(os.devnull, "w")  # kept open for the rest of the process
        try:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            sys.stdout = devnull


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_comparison(X: pd.DataFrame, ks: list[int], methods: tuple[str, ...],
                   args: argparse.Namespace, title: str) -> None:
    """Fit, print the table and verdict, and write the report into ``args.out``.

    Parameters
    ----------
    X : pandas.DataFrame
        The features.
    ks : list of int
        Component counts.
    methods : tuple of str
        Methods to fit.
    args : argparse.Namespace
        The parsed options (``out``, ``covariance``, ``seed``, ``draws``...).
    title : str
        Report title.
    """
    out = check_out(args.out)
    bayes = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
    try:
        cmp = bg.compare_k(X, ks, methods=methods, covariance_type=args.covariance,
                           random_state=args.seed, progressbar=not args.quiet,
                           bayes_kwargs=bayes)
    except ValueError as err:
        raise UsageError(_one_line(err)) from None
    failed = [key for key, r in cmp.results.items() if r is None]
    if len(failed) == len(cmp.results):
        key = failed[0]
        why = _one_line(cmp.messages.get(key, "")) or "no message"
        label = " ".join(map(str, key[:-1])) + f" K={key[-1]}"
        raise NoFitError(f"no fit succeeded ({len(failed)} tried), so no report was written; "
                         f"{label}: {why}")
    shown = cmp.table[["loglik", "n_params", "aic", "bic", "icl", "elpd_loo", "se_loo"]]
    _say(shown.dropna(axis=1, how="all").to_string(float_format=lambda v: f"{v:.2f}"))
    _say(cmp.verdict())
    created = _missing_top(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = bg.report(cmp, out / "report.html", title=title)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    _say(f"report: {path.resolve()} (Markdown twin: {path.with_suffix('.md').name}; "
          f"tables as CSV and LaTeX in {path.stem}_files/)")


def _missing_top(folder: Path) -> Path | None:
    """The outermost folder of ``folder`` that does not exist yet (None if it exists)."""
    top = None
    current = folder.absolute()
    while not current.exists():
        top, current = current, current.parent
    return top


def _methods(args: argparse.Namespace) -> tuple[str, ...]:
    """The parsed ``--methods``, or the command's default."""
    return parse_methods(args.methods if args.methods is not None else args.default_methods)


def _cmd_demo(args: argparse.Namespace) -> None:
    methods = _methods(args)
    check_out(args.out)
    X = bg.datasets.load_faithful()
    _say(f"Old Faithful: {len(X)} eruptions, features {list(X.columns)}; "
          f"{', '.join(methods)} for K=1..5")
    run_comparison(X, list(range(1, 6)), methods, args, "bayesgmm demo: Old Faithful")


def _cmd_fit(args: argparse.Namespace) -> None:
    ks = parse_k_range(args.k)
    methods = _methods(args)
    check_out(args.out)
    table = read_table(args.data, args.columns, sep=args.sep, decimal=args.decimal,
                       missing=args.missing)
    X = table.frame
    _say(f"read {Path(args.data).name}: {len(X)} rows, {X.shape[1]} feature(s) "
          f"({', '.join(X.columns)}); separator {_SEP_NAMES.get(table.sep, repr(table.sep))}, "
          f"decimal {table.decimal!r}")
    for note in table.notes:
        _say(note)
    missing = describe_missing(X)
    if missing is not None:
        _say(missing)
    if len(X) < max(ks):
        raise UsageError(f"--k asks for up to {max(ks)} components but the data have "
                         f"{len(X)} rows")
    run_comparison(X, ks, methods, args, f"bayesgmm: {Path(args.data).name}")


def _common(parser: argparse.ArgumentParser, methods: str, out: str) -> None:
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated methods from {','.join(METHODS)} "
                             f"(default {methods})")
    parser.set_defaults(default_methods=methods)
    parser.add_argument("--covariance", default="full",
                        choices=(*COVARIANCE_TYPES, *MCLUST_MODELS, "all"),
                        help="covariance type (default full): full, tied, diag, spherical, "
                             "one of mclust's 14 models EII ... VVV (EM only, but for VVV, "
                             "EEE, VVI, VII), or 'all' for mclust's table of the 14 models "
                             "by BIC (Bayesian methods fit the 4 they have)")
    parser.add_argument("--out", default=out,
                        help=f"output folder, created after the fits (default {out}); "
                             "an existing file is refused")
    parser.add_argument("--seed", type=_count(0), default=0, help="random seed (default 0)")
    parser.add_argument("--draws", type=_count(1), default=1000,
                        help="posterior draws per chain for Bayesian fits (default 1000)")
    parser.add_argument("--tune", type=_count(0), default=1000,
                        help="NUTS tuning steps per chain (default 1000)")
    parser.add_argument("--chains", type=_count(1), default=2,
                        help="NUTS chains (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesgmm`` command.

    Returns
    -------
    argparse.ArgumentParser
        Its errors raise a one-line :class:`UsageError`.
    """
    parser = _Parser(prog="bayesgmm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="Old Faithful (shipped), EM + ADVI + NUTS, K=1..5, "
                                       "with a report")
    _common(demo, DEMO_METHODS, "bayesgmm-demo")
    demo.set_defaults(run=_cmd_demo)
    fit = sub.add_parser("fit", help="fit mixtures to a CSV file with a header, with a report",
                         description="Fit Gaussian mixtures for every K and method to the\n"
                                     "numeric columns of a CSV file and write a report.",
                         epilog=FIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("data", help="CSV file with a header row")
    fit.add_argument("--k", default="1-6", help="component counts, e.g. 3 or 1-6 (default 1-6)")
    fit.add_argument("--columns", default=None,
                     help="comma-separated header names of the features (default: every "
                          "column but row names and ids)")
    fit.add_argument("--sep", type=_separator, default=None,
                     help="field separator, e.g. ';' or tab (default: sniffed)")
    fit.add_argument("--decimal", choices=(".", ","), default=None, metavar="{.|,}",
                     help="decimal mark (default: sniffed)")
    fit.add_argument("--missing", choices=MISSING_CHOICES, default="marginalize",
                     help="blank or NA cells: fit them by EM as missing at random "
                          "(marginalize, the default) or refuse them (error)")
    _common(fit, FIT_METHODS, "bayesgmm-report")
    fit.set_defaults(run=_cmd_fit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after the program name (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        Exit status: 0 report written, 1 no fit succeeded, 2 bad input or
        options, 130 interrupted.
    """
    try:
        args: Any = build_parser().parse_args(argv)
        args.run(args)
    except UsageError as err:
        print(f"bayesgmm: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except NoFitError as err:
        print(f"bayesgmm: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_NO_FIT
    except KeyboardInterrupt:
        print("bayesgmm: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
