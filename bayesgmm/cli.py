"""Command line: ``bayesgmm demo`` and ``bayesgmm fit DATA.csv``.

A thin layer over the public API. Errors in the user's input end with a
one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import bayesgmm as bg
from bayesgmm._constants import COVARIANCE_TYPES
from bayesgmm.selection import METHODS

__all__ = ["main"]


class UsageError(Exception):
    """Bad input from the command line user (exit status 2)."""


def parse_k_range(text: str) -> list[int]:
    """Parse ``"3"`` or ``"1-6"`` into a list of component counts.

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


def read_table(path: str, columns: str | None) -> pd.DataFrame:
    """Read a CSV with a header and keep the numeric columns asked for."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        frame = pd.read_csv(file)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path} is empty") from None
    if frame.empty:
        raise UsageError(f"{path} has a header but no rows")
    if columns:
        names = [c.strip() for c in columns.split(",") if c.strip()]
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise UsageError(f"--columns: {missing} not in {path} (has {list(frame.columns)})")
        frame = frame[names]
    for name in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise UsageError(
                f"column {name!r} is not numeric (e.g. {frame[name].iloc[0]!r}); "
                "choose numeric columns with --columns"
            )
        if frame[name].isna().all():
            raise UsageError(f"column {name!r} holds no numbers (all missing); "
                             "leave it out with --columns")
    if frame.isna().any().any():
        bad = [c for c in frame.columns if frame[c].isna().any()]
        raise UsageError(f"columns {bad} have missing values; drop those rows first")
    return frame


def parse_methods(text: str) -> tuple[str, ...]:
    """Parse ``"em,advi,nuts"`` into method names, rejecting unknown ones."""
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise UsageError(f"--methods: {unknown or text!r} not known; choose from "
                         f"{','.join(METHODS)}")
    return methods


def run_comparison(X: pd.DataFrame, ks: list[int], methods: tuple[str, ...], args,
                   title: str) -> None:
    """Fit, print the table and verdict, and write the report into ``args.out``."""
    bayes = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
    cmp = bg.compare_k(X, ks, methods=methods, covariance_type=args.covariance,
                       random_state=args.seed, progressbar=not args.quiet, bayes_kwargs=bayes)
    shown = cmp.table[["loglik", "n_params", "aic", "bic", "icl", "elpd_loo", "se_loo"]]
    print(shown.dropna(axis=1, how="all").to_string(float_format=lambda v: f"{v:.2f}"))
    print(cmp.verdict())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = bg.report(cmp, out / "report.html", title=title)
    print(f"report: {path.resolve()} (Markdown twin: {path.with_suffix('.md').name}; "
          f"tables as CSV and LaTeX in {path.stem}_files/)")


def _cmd_demo(args: argparse.Namespace) -> None:
    X = bg.datasets.load_faithful()
    methods = parse_methods(args.methods)
    print(f"Old Faithful: {len(X)} eruptions, features {list(X.columns)}; "
          f"{', '.join(methods)} for K=1..5")
    run_comparison(X, list(range(1, 6)), methods, args, "bayesgmm demo: Old Faithful")


def _cmd_fit(args: argparse.Namespace) -> None:
    ks = parse_k_range(args.k)
    methods = parse_methods(args.methods)
    X = read_table(args.data, args.columns)
    if len(X) < max(ks):
        raise UsageError(f"--k asks for up to {max(ks)} components but the data have "
                         f"{len(X)} rows")
    run_comparison(X, ks, methods, args, f"bayesgmm: {Path(args.data).name}")


def _common(parser: argparse.ArgumentParser, methods: str, out: str) -> None:
    parser.add_argument("--methods", default=methods,
                        help=f"comma-separated methods from {','.join(METHODS)} "
                             f"(default {methods})")
    parser.add_argument("--covariance", default="full", choices=COVARIANCE_TYPES,
                        help="covariance type (default full)")
    parser.add_argument("--out", default=out, help=f"output folder (default {out})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--draws", type=int, default=1000,
                        help="posterior draws per chain for Bayesian fits (default 1000)")
    parser.add_argument("--tune", type=int, default=1000,
                        help="NUTS tuning steps per chain (default 1000)")
    parser.add_argument("--chains", type=int, default=2, help="NUTS chains (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesgmm`` command."""
    parser = argparse.ArgumentParser(prog="bayesgmm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="Old Faithful (shipped), EM + ADVI + NUTS, K=1..5, "
                                       "with a report")
    _common(demo, "em,advi,nuts", "bayesgmm-demo")
    demo.set_defaults(run=_cmd_demo)
    fit = sub.add_parser("fit", help="fit mixtures to a CSV file with a header, with a report")
    fit.add_argument("data", help="CSV file with a header row")
    fit.add_argument("--k", default="1-6", help="component counts, e.g. 3 or 1-6 (default 1-6)")
    fit.add_argument("--columns", default=None,
                     help="comma-separated numeric columns to use (default: all)")
    _common(fit, "em", "bayesgmm-report")
    fit.set_defaults(run=_cmd_fit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except UsageError as err:
        print(f"bayesgmm: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
