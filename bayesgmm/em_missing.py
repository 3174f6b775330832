"""EM for Gaussian mixtures on data with missing entries (NaN), missing at random.

Ghahramani and Jordan (1994); McLachlan and Krishnan, *The EM Algorithm and
Extensions*, ch. 2. Rows are grouped by their missingness pattern (which
entries are observed). For a pattern with observed coordinates ``O`` and
missing ones ``M``, and every component ``k`` with precision ``Lambda_k =
Sigma_k^-1``:

- the observed part has the marginal density ``N(x_O | mu_kO, Sigma_kOO)``;
- the missing part, given the observed one, is Gaussian with covariance
  ``Lambda_kMM^-1`` and mean ``mu_kM - Lambda_kMM^-1 Lambda_kMO (x_O - mu_kO)``;
- with ``x_M`` replaced by that mean, the full quadratic form
  ``(x - mu_k)' Lambda_k (x - mu_k)`` equals the marginal one of ``x_O``, and
  ``log det Sigma_kOO = log det Sigma_k + log det Lambda_kMM``.

So one ``|M| x |M|`` inverse per pattern and component gives the E-step
(the observed-data log-likelihood and responsibilities) and the conditional
moments. The work is vectorised over patterns: rows with the same number of
missing entries form one group, whose patterns' ``Lambda_kMM`` blocks are
inverted in one batched call, and every row is then handled with dense
array operations (missing entries set to the mean, so ``Lambda_k (x - mu_k)``
is one matrix product for all rows). The M-step uses the completed rows' weighted second
moments plus the conditional covariances, projected on the covariance
structure by the same M-step as complete data (:class:`bayesgmm.em._Stats`).
Each iteration cannot lower the observed-data log-likelihood, which is what
is reported and what AIC, BIC and ICL use.

EM runs in working units, centred and scaled by the observed values of each
column; the log-likelihood is mapped back row by row (a row's Jacobian only
counts its observed columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from bayesgmm.em import (
    LOG_2PI,
    EMInfo,
    EMState,
    _Frame,
    _Stats,
    iterate,
)

__all__ = [
    "Patterns",
    "conditional_mean",
    "e_step",
    "frame_of",
    "group_patterns",
    "run_em",
    "sample_missing",
    "weighted_log_prob",
]


class Patterns(NamedTuple):
    """Rows grouped by missingness pattern.

    ``observed[p]`` is the boolean mask of the observed columns of pattern
    ``p``; ``pattern[n]`` is the pattern of row ``n``.
    """

    observed: np.ndarray
    pattern: np.ndarray


def group_patterns(X: np.ndarray) -> Patterns:
    """Group the rows of ``X`` by which entries are observed.

    Examples
    --------
    >>> p = group_patterns(np.array([[1.0, np.nan], [2.0, 3.0], [4.0, np.nan]]))
    >>> p.observed.tolist(), p.pattern.tolist()
    ([[True, False], [True, True]], [0, 1, 0])
    """
    observed = ~np.isnan(X)
    d = X.shape[1]
    if d <= 62:  # one integer code per row: much faster than np.unique on rows
        codes = observed.astype(np.int64) @ (np.int64(1) << np.arange(d, dtype=np.int64))
        _, first, pattern = np.unique(codes, return_index=True, return_inverse=True)
        return Patterns(observed[first], pattern.ravel())
    masks, pattern = np.unique(observed, axis=0, return_inverse=True)
    return Patterns(masks, pattern.ravel())


class _Group(NamedTuple):
    """Rows with the same number ``m`` of missing entries (any patterns)."""

    rows: np.ndarray  # (n_g,) row indices
    local: np.ndarray  # (n_g,) index of each row's pattern within ``missing``
    missing: np.ndarray  # (P_g, m) missing columns of every pattern of the group
    n_patterns: int


class _Layout(NamedTuple):
    """The data in working units, missing entries at 0, and its groups (built once)."""

    Z: np.ndarray  # (n, D), NaN -> 0
    observed: np.ndarray  # (n, D) float 0/1
    groups: list[_Group]
    log_jacobian: np.ndarray  # (n,) sum of log scale over each row's observed columns

    @classmethod
    def of(cls, X: np.ndarray, frame: _Frame) -> _Layout:
        patterns = group_patterns(X)
        observed = ~np.isnan(X)
        Z = np.where(observed, (X - frame.center) / frame.scale, 0.0)
        n_missing = (~patterns.observed).sum(axis=1)
        groups = []
        for m in np.unique(n_missing):
            members = np.flatnonzero(n_missing == m)  # patterns with m missing entries
            local_of = np.full(patterns.observed.shape[0], -1)
            local_of[members] = np.arange(members.size)
            rows = np.flatnonzero(np.isin(patterns.pattern, members))
            missing = np.array([np.flatnonzero(~patterns.observed[p]) for p in members],
                               dtype=int).reshape(members.size, m)
            groups.append(_Group(rows, local_of[patterns.pattern[rows]], missing, members.size))
        log_jac = observed @ np.log(frame.scale)
        return cls(np.ascontiguousarray(Z), observed.astype(float), groups, log_jac)


def frame_of(X: np.ndarray, covariance_type: str) -> _Frame:
    """Working units from the observed values of every column (as :class:`em._Frame`)."""
    observed = ~np.isnan(X)
    counts = np.maximum(observed.sum(axis=0), 1)
    filled = np.where(observed, X, 0.0)
    center = filled.sum(axis=0) / counts
    filled -= center
    filled *= observed
    sd = np.sqrt(np.einsum("nd,nd->d", filled, filled) / counts)
    return _Frame.from_moments(center, sd, covariance_type)


class _Model(NamedTuple):
    """The mixture in working units, in the form every pattern reads."""

    log_weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    precisions: np.ndarray  # (K, D, D)
    log_det_cov: np.ndarray  # (K,)

    @classmethod
    def of(cls, state: EMState) -> _Model:
        k, d = state.means.shape
        pc = state.precisions_cholesky
        kind = state.covariance_type
        if kind == "full":
            u = pc
        elif kind == "tied":
            u = np.broadcast_to(pc, (k, d, d))
        elif kind == "diag":
            u = pc[:, :, None] * np.eye(d)[None]
        else:
            u = pc[:, None, None] * np.eye(d)[None]
        precisions = u @ np.swapaxes(u, 1, 2)
        log_det = -2.0 * np.log(np.abs(np.diagonal(u, axis1=1, axis2=2))).sum(axis=1)
        with np.errstate(divide="ignore"):
            log_w = np.log(state.weights)
        return cls(log_w, state.means, precisions, log_det)


def _log_sum_exp(a: np.ndarray, axis: int) -> np.ndarray:
    """``log sum exp`` over ``axis`` (a third of scipy's time on these small blocks)."""
    top = a.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(top, axis=axis) + np.log(np.exp(a - top).sum(axis=axis))


def _responsibilities(log_prob: np.ndarray) -> np.ndarray:
    """Responsibilities ``(K, n_b)`` from a block's weighted log-densities."""
    return np.exp(log_prob - _log_sum_exp(log_prob, axis=0)[None, :])


class _Block(NamedTuple):
    """E-step output for a block of rows of one group (working units)."""

    rows: np.ndarray  # (n_b,)
    log_prob: np.ndarray  # (K, n_b): log w_k + log N(x_O | mu_kO, Sigma_kOO)
    diff: np.ndarray  # (K, n_b, D): completed row minus mu_k (x_M = E[x_M | x_O, k])
    local: np.ndarray  # (n_b,) pattern of each row within the group


def _chunk(n_components: int, n_features: int) -> int:
    return max(64, (1 << 18) // max(1, n_components * n_features))


def _blocks(layout: _Layout, model: _Model):
    """Yield ``(group, inverse blocks, block)`` for every block of rows.

    ``inverse blocks`` is ``Lambda_kMM^-1`` of every pattern of the group,
    shape ``(K, P_g, m, m)`` (``None`` when nothing is missing).
    """
    k, d = model.means.shape
    step = _chunk(k, d)
    for group in layout.groups:
        m = group.missing.shape[1]
        inv = log_det_mm = None
        if m:
            idx = group.missing
            lam_mm = model.precisions[:, idx[:, :, None], idx[:, None, :]]  # (K, P, m, m)
            inv = np.linalg.inv(lam_mm)
            log_det_mm = np.linalg.slogdet(lam_mm)[1]  # (K, P)
        for a in range(0, group.rows.size, step):
            rows = group.rows[a : a + step]
            local = group.local[a : a + step]
            diff = layout.Z[rows][None] - model.means[:, None, :]
            diff *= layout.observed[rows][None]  # missing coordinates at the mean
            v = np.matmul(diff, model.precisions)  # Lambda_k (x - mu_k), zero-filled
            quad = np.einsum("knd,knd->kn", diff, v)
            log_det = np.broadcast_to(model.log_det_cov[:, None], quad.shape)
            if m:
                cols = group.missing[local]  # (n_b, m)
                t = np.take_along_axis(v, np.broadcast_to(cols[None], (k, *cols.shape)),
                                       axis=2)  # Lambda_MO (x_O - mu_O), (K, n_b, m)
                shift = np.einsum("knij,knj->kni", inv[:, local], t)
                quad = quad - np.einsum("kni,kni->kn", t, shift)
                log_det = log_det + log_det_mm[:, local]
                np.put_along_axis(diff, np.broadcast_to(cols[None], (k, *cols.shape)),
                                  -shift, axis=2)
            log_prob = model.log_weights[:, None] - 0.5 * ((d - m) * LOG_2PI + log_det + quad)
            yield group, inv, _Block(rows, log_prob, diff, local)


def weighted_log_prob(X: np.ndarray, state: EMState) -> np.ndarray:
    """``log w_k + log N(x_nO | mu_kO, Sigma_kOO)`` of every row's observed part.

    The incomplete-data counterpart of :func:`bayesgmm.em.weighted_log_prob`
    (equal to it on complete rows). A row with no observed entry gets
    ``log w_k``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data; NaN marks a missing entry.
    state : EMState
        Mixture parameters in data units.

    Returns
    -------
    ndarray of shape (n_samples, n_components)

    Examples
    --------
    >>> state = EMState(np.array([1.0]), np.zeros((1, 2)), np.eye(2)[None] * 4.0,
    ...                 np.eye(2)[None] / 2.0, "full")
    >>> from scipy import stats
    >>> bool(np.isclose(weighted_log_prob(np.array([[1.0, np.nan]]), state)[0, 0],
    ...                 stats.norm(0, 2).logpdf(1.0)))
    True
    """
    frame = frame_of(X, state.covariance_type)
    layout = _Layout.of(X, frame)
    out = np.empty((X.shape[0], state.weights.shape[0]))
    for _, _, block in _blocks(layout, _Model.of(frame.to_work(state))):
        out[block.rows] = block.log_prob.T
    return out - layout.log_jacobian[:, None]


def e_step(X: np.ndarray, state: EMState) -> tuple[np.ndarray, np.ndarray]:
    """Observed-data log-likelihood of every row and the responsibilities.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data; NaN marks a missing entry.
    state : EMState
        Mixture parameters in data units.

    Returns
    -------
    log_lik : ndarray of shape (n_samples,)
    resp : ndarray of shape (n_samples, n_components)
    """
    weighted = weighted_log_prob(X, state)
    rows = _log_sum_exp(weighted, axis=1)
    return rows, np.exp(weighted - rows[:, None])


def _as_states(state: EMState | Sequence[EMState]) -> tuple[list[EMState], bool]:
    """One state or several (e.g. posterior draws), and whether it was one."""
    if isinstance(state, EMState):
        return [state], True
    states = list(state)
    if not states:
        raise ValueError("state: expected an EMState or a non-empty sequence of them.")
    return states, False


def conditional_mean(X: np.ndarray, state: EMState | Sequence[EMState]) -> np.ndarray:
    """``X`` with every missing entry replaced by ``E[x_M | x_O]`` under the mixture.

    The conditional expectation is the mixture of the components'
    conditional means, weighted by the responsibilities given the observed
    entries. Given several states (posterior draws), their conditional
    expectations are averaged (the posterior predictive mean); the data's
    layout is built once for all of them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data; NaN marks a missing entry.
    state : EMState or sequence of EMState
        Mixture parameters in data units.

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Examples
    --------
    >>> cov = np.array([[[1.0, 0.8], [0.8, 1.0]]])
    >>> state = EMState(np.array([1.0]), np.zeros((1, 2)), cov,
    ...                 np.linalg.cholesky(np.linalg.inv(cov)), "full")
    >>> conditional_mean(np.array([[1.0, np.nan]]), state).round(6).tolist()  # 0.8 * 1
    [[1.0, 0.8]]
    """
    states, _ = _as_states(state)
    frame = frame_of(X, states[0].covariance_type)
    layout = _Layout.of(X, frame)
    total = np.zeros(X.shape)
    for one in states:
        model = _Model.of(frame.to_work(one))
        for _, inv, block in _blocks(layout, model):
            if inv is None:
                continue
            resp = _responsibilities(block.log_prob)
            z = np.einsum("kn,knd->nd", resp, block.diff + model.means[:, None, :])
            total[block.rows] += z * frame.scale + frame.center
    missing = np.isnan(X)
    out = np.array(X, dtype=float, copy=True)
    out[missing] = total[missing] / len(states)
    return out


def sample_missing(X: np.ndarray, state: EMState | Sequence[EMState],
                   rng: np.random.Generator) -> np.ndarray:
    """``X`` with every missing entry drawn from its conditional distribution.

    For each incomplete row a component is drawn from its responsibilities
    given the observed entries, then the missing entries from that
    component's conditional Gaussian ``N(E[x_M | x_O, k], Lambda_kMM^-1)``.
    With ``state`` a posterior draw, this is one completed data set of a
    multiple imputation; given several states, one completed data set each
    (the data's layout is built once).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data; NaN marks a missing entry.
    state : EMState or sequence of EMState
        Mixture parameters in data units.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_samples, n_features), or (n_states, n_samples, n_features)
        Observed entries unchanged; the leading axis when ``state`` is a
        sequence.

    Examples
    --------
    >>> cov = np.array([[[1.0, 0.8], [0.8, 1.0]]])
    >>> state = EMState(np.array([1.0]), np.zeros((1, 2)), cov,
    ...                 np.linalg.cholesky(np.linalg.inv(cov)), "full")
    >>> X = np.tile([[1.0, np.nan]], (20000, 1))
    >>> done = sample_missing(X, state, np.random.default_rng(0))[:, 1]
    >>> bool(abs(done.mean() - 0.8) < 0.01 and abs(done.var() - 0.36) < 0.01)
    True
    """
    states, single = _as_states(state)
    frame = frame_of(X, states[0].covariance_type)
    layout = _Layout.of(X, frame)
    sets = []
    for one in states:
        model = _Model.of(frame.to_work(one))
        out = np.array(X, dtype=float, copy=True)
        factors: dict[int, np.ndarray] = {}
        for group, inv, block in _blocks(layout, model):
            if inv is None:
                continue
            if id(group) not in factors:
                factors[id(group)] = np.linalg.cholesky(inv)  # (K, P, m, m)
            resp = _responsibilities(block.log_prob)
            cum = np.cumsum(resp, axis=0)
            pick = (rng.random(resp.shape[1])[None, :] > cum).sum(axis=0)
            pick = np.minimum(pick, resp.shape[0] - 1)  # (n_b,) drawn component
            cols = group.missing[block.local]  # (n_b, m)
            rows_idx = np.arange(block.rows.size)
            centre = (block.diff[pick, rows_idx] + model.means[pick])  # (n_b, D), completed
            centre = np.take_along_axis(centre, cols, axis=1)  # (n_b, m)
            chol = factors[id(group)][pick, block.local]  # (n_b, m, m)
            z = centre + np.einsum("nij,nj->ni", chol, rng.standard_normal(cols.shape))
            target = out[block.rows]
            np.put_along_axis(target, cols, z * frame.scale[cols] + frame.center[cols], axis=1)
            out[block.rows] = target
        sets.append(out)
    return sets[0] if single else np.stack(sets)


def run_em(
    X: np.ndarray,
    state: EMState,
    *,
    reg_covar: float,
    tol: float,
    max_iter: int,
    callback=None,
) -> tuple[EMState, EMInfo]:
    """Iterate EM on incomplete data from ``state`` (see :func:`bayesgmm.em.run_em`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data; NaN marks a missing entry (every row needs one observed entry).
    state : EMState
        Starting parameters, data units.
    reg_covar : float
        Non-negative amount added to the diagonal of every covariance.
    tol : float
        Convergence threshold on the gain in mean observed-data
        log-likelihood per sample.
    max_iter : int
        Maximum number of iterations.
    callback : callable, optional
        Called as ``callback(iteration, mean_log_likelihood)`` after each pass.

    Returns
    -------
    state : EMState
    info : EMInfo
        ``lower_bound`` and ``trace`` are mean observed-data log-likelihoods.
    """
    frame = frame_of(X, state.covariance_type)
    layout = _Layout.of(X, frame)
    work, info = iterate(lambda current: _accumulate(layout, current), frame.to_work(state),
                         n_samples=X.shape[0], log_jacobian=float(layout.log_jacobian.mean()),
                         reg=frame.reg(reg_covar), reg_covar=reg_covar, tol=tol,
                         max_iter=max_iter, callback=callback)
    return frame.to_data(work), info


def _accumulate(layout: _Layout, work: EMState) -> tuple[float, _Stats]:
    """One E-step: total working-unit log-likelihood and the expected sufficient statistics.

    Second moments are taken about the current means (the ``centers`` form of
    :class:`bayesgmm.em._Stats`), which keeps them exact for tight components;
    the conditional covariances are added per pattern, weighted by the
    pattern's summed responsibilities.
    """
    k, d = work.means.shape
    kind = work.covariance_type
    model = _Model.of(work)
    stats = _Stats(k, d, kind, centers=work.means)
    full = np.zeros((k, d, d))
    total = 0.0
    pattern_weight: dict[int, tuple[_Group, np.ndarray, np.ndarray]] = {}
    for group, inv, block in _blocks(layout, model):
        rows_ll = _log_sum_exp(block.log_prob, axis=0)
        total += float(rows_ll.sum())
        resp = np.exp(block.log_prob - rows_ll[None, :])  # (K, n_b)
        weighted = block.diff * resp[:, :, None]
        stats.nk += resp.sum(axis=1)
        stats.sx += weighted.sum(axis=1)
        full += np.matmul(np.swapaxes(weighted, 1, 2), block.diff)
        if inv is not None:
            if id(group) not in pattern_weight:
                pattern_weight[id(group)] = (group, inv, np.zeros((k, group.n_patterns)))
            sums = pattern_weight[id(group)][2]
            for j in range(k):
                sums[j] += np.bincount(block.local, weights=resp[j],
                                       minlength=group.n_patterns)
    for group, inv, sums in pattern_weight.values():
        # sum_p (sum of r_nk over the pattern's rows) Lambda_kMM^-1, placed at (M_p, M_p)
        idx = group.missing
        flat = (np.arange(k)[:, None, None, None] * d * d + idx[None, :, :, None] * d
                + idx[None, :, None, :])
        weighted_inv = sums[:, :, None, None] * inv  # (K, P, m, m)
        full += np.bincount(np.broadcast_to(flat, weighted_inv.shape).ravel(),
                            weights=weighted_inv.ravel(), minlength=k * d * d).reshape(k, d, d)
    if kind == "full":
        stats.sxx = full
    elif kind == "tied":
        stats.sxx = full.sum(axis=0)
    else:
        stats.sxx = np.diagonal(full, axis1=1, axis2=2).copy()
    return total, stats
