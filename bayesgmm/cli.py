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


def em_table(X: pd.DataFrame, ks: list[int], covariance_type: str, seed: int) -> pd.DataFrame:
    """Fit EM for every K and tabulate log-likelihood, parameters and criteria."""
    rows = []
    for k in ks:
        result = bg.EMGMM(k, covariance_type=covariance_type, n_init=5,
                          random_state=seed).fit(X).result_
        rows.append({"K": k, "loglik": result.log_likelihood, "n_params": result.n_parameters,
                     "AIC": result.aic(), "BIC": result.bic(), "ICL": result.icl()})
    return pd.DataFrame(rows).set_index("K")


def _report(table: pd.DataFrame, out: Path | None) -> None:
    print(table.to_string(float_format=lambda v: f"{v:.2f}"))
    for criterion in ("AIC", "BIC", "ICL"):
        print(f"{criterion} picks K={int(table[criterion].idxmin())}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "model_selection.csv"
        table.to_csv(path)
        print(f"table written to {path}")


def _cmd_demo(args: argparse.Namespace) -> None:
    X = bg.datasets.load_faithful()
    print(f"Old Faithful: {len(X)} eruptions, features {list(X.columns)}; EM for K=1..5")
    cmp = bg.compare_k(X, range(1, 6), methods=("em",), random_state=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = bg.report(cmp, out / "report.html", title="bayesgmm demo: Old Faithful")
    print(cmp.verdict())
    print(f"report: {path.resolve()} (Markdown twin: {path.with_suffix('.md').name})")


def _cmd_fit(args: argparse.Namespace) -> None:
    ks = parse_k_range(args.k)
    X = read_table(args.data, args.columns)
    if len(X) < max(ks):
        raise UsageError(f"--k asks for up to {max(ks)} components but the data have "
                         f"{len(X)} rows")
    methods = [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in methods if m != "em"]
    if unknown:
        raise UsageError(f"--methods: {unknown} not available here yet; use --methods em")
    _report(em_table(X, ks, args.covariance, args.seed), Path(args.out) if args.out else None)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesgmm`` command."""
    parser = argparse.ArgumentParser(prog="bayesgmm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit Old Faithful (shipped) for K=1..5")
    demo.add_argument("--out", default="bayesgmm-demo", help="output folder")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.set_defaults(run=_cmd_demo)
    fit = sub.add_parser("fit", help="fit mixtures to a CSV file with a header")
    fit.add_argument("data", help="CSV file with a header row")
    fit.add_argument("--k", default="1-6", help="component counts, e.g. 3 or 1-6")
    fit.add_argument("--methods", default="em", help="comma-separated methods")
    fit.add_argument("--covariance", default="full", choices=COVARIANCE_TYPES)
    fit.add_argument("--columns", default=None, help="comma-separated numeric columns")
    fit.add_argument("--out", default=None, help="folder for the results table")
    fit.add_argument("--seed", type=int, default=0, help="random seed")
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
