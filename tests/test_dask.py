"""EM on dask input (issue 13 §4): the map-reduce fit equals the in-memory fit.

Every test runs on a ``LocalCluster`` of two worker processes (one thread each),
so the chunk statistics are computed in other processes and pickled back.
"""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from scipy.special import logsumexp

import bayesgmm as bg
from bayesgmm import criteria, em, em_dask
from tests.conftest import COVARIANCE_TYPES, HOSTILE_ERRORS, HOSTILE_IDS

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

K = 3
CHUNK = 500


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", memory_limit="1GiB")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def data():
    return bg.datasets.make_blobs_gmm(3000, K, 3, separation=4.0, random_state=1)


def _start(X, kind):
    """Initial parameters both fits are given: one in-memory k-means start, nudged."""
    state = em.init_state(X, K, kind, reg_covar=1e-6, init_params="kmeans",
                          rng=np.random.default_rng(0))
    pc = state.precisions_cholesky
    prec = (pc @ pc.transpose(0, 2, 1) if kind == "full" else pc @ pc.T if kind == "tied"
            else pc**2)
    return {"weights_init": state.weights, "means_init": state.means + 0.3,
            "precisions_init": prec}


@pytest.fixture(scope="module", params=COVARIANCE_TYPES)
def pair(request, data, client):
    kind = request.param
    params = dict(n_components=K, covariance_type=kind, tol=1e-8, max_iter=1000,
                  **_start(data.X, kind))
    memory = bg.EMGMM(**params).fit(data.X)
    with distributed.get_task_stream(client) as tasks:
        dask_fit = bg.EMGMM(**params).fit(da.from_array(data.X, chunks=(CHUNK, 3)))
    return memory, dask_fit, tasks.data


def test_dask_fit_equals_in_memory_fit_from_the_same_start(pair, data):
    memory, dask_fit, tasks = pair
    # the chunk statistics ran on the workers, not in the test process
    assert any("_chunk_statistics" in str(t["key"]) for t in tasks)
    # issue goal: relative 1e-8. Both runs take the same iterations; they differ only in
    # the order of floating-point sums (chunks, the working units' moments)
    assert dask_fit.n_iter_ == memory.n_iter_
    assert dask_fit.converged_ and memory.converged_
    assert dask_fit.result_.log_likelihood == pytest.approx(memory.result_.log_likelihood,
                                                            rel=1e-8)
    np.testing.assert_allclose(dask_fit.means_, memory.means_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dask_fit.covariances_, memory.covariances_, rtol=1e-7)
    np.testing.assert_allclose(dask_fit.lower_bounds_, memory.lower_bounds_, rtol=1e-9)
    labels = dask_fit.predict(da.from_array(data.X, chunks=(700, 3)))
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), memory.predict(data.X))
    np.testing.assert_array_equal(dask_fit.result_.labels.values, memory.result_.labels.values)


def test_dask_log_likelihood_matches_scipy(pair, data):
    # independent reference: the mixture density written out with scipy.stats
    _, dask_fit, _ = pair
    covs = dask_fit.result_.covariances.values
    comp = np.column_stack([np.log(w) + stats.multivariate_normal(m, c).logpdf(data.X)
                            for w, m, c in zip(dask_fit.weights_, dask_fit.means_, covs,
                                                   strict=True)])
    rows = logsumexp(comp, axis=1)
    lazy = dask_fit.score_samples(da.from_array(data.X, chunks=(CHUNK, 3)))
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), rows, rtol=1e-10)  # float64 round-off only
    assert dask_fit.result_.log_likelihood == pytest.approx(rows.sum(), rel=1e-10)


def test_predict_stays_lazy_and_result_is_dask_backed(pair, data):
    _, dask_fit, _ = pair
    X = da.from_array(data.X, chunks=(CHUNK, 3))
    proba = dask_fit.predict_proba(X)
    assert isinstance(proba, da.Array) and proba.shape == (3000, K)
    assert proba.chunks[0] == X.chunks[0]
    values = proba.compute()
    np.testing.assert_allclose(values.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(values, dask_fit.predict_proba(data.X), atol=1e-10)
    assert isinstance(dask_fit.result_.responsibilities.data, da.Array)
    assert isinstance(dask_fit.result_.data.data, da.Array)
    assert dask_fit.result_.n_obs == 3000


def test_dask_dataframe_input(data, client):
    frame = pd.DataFrame(data.X, columns=["a", "b", "c"])
    params = dict(n_components=K, tol=1e-8, **_start(data.X, "full"))
    memory = bg.EMGMM(**params).fit(frame)
    fit = bg.EMGMM(**params).fit(dd.from_pandas(frame, npartitions=4))
    assert fit.result_.feature_names == ["a", "b", "c"]
    assert list(fit.feature_names_in_) == ["a", "b", "c"]
    assert fit.result_.log_likelihood == pytest.approx(memory.result_.log_likelihood, rel=1e-8)
    labels = fit.predict(dd.from_pandas(frame, npartitions=3))
    np.testing.assert_array_equal(labels.compute(), memory.predict(frame))


def test_default_start_runs_restarts_on_a_sample(data, client, monkeypatch):
    # above SAMPLE_ROWS the n_init runs are in memory on a sample, one full run follows
    monkeypatch.setattr(em_dask, "SAMPLE_ROWS", 1000)
    memory = bg.EMGMM(K, n_init=3, random_state=0, tol=1e-9).fit(data.X)
    fit = bg.EMGMM(K, n_init=3, random_state=0, tol=1e-9).fit(
        da.from_array(data.X, chunks=(CHUNK, 3)))
    assert fit.converged_
    # the same optimum (well separated blobs): up to the 1e-9 tolerance per row
    assert fit.result_.log_likelihood == pytest.approx(memory.result_.log_likelihood, rel=1e-7)
    agree = (fit.result_.labels.values[:, None] == memory.result_.labels.values[None, :5])
    assert agree.any()


@pytest.mark.parametrize(("X", "k", "pattern"), [h for h in HOSTILE_ERRORS
                                                 if not isinstance(h[0], pd.DataFrame)],
                         ids=[i for h, i in zip(HOSTILE_ERRORS, HOSTILE_IDS, strict=True)
                              if not isinstance(h[0], pd.DataFrame)])
def test_hostile_dask_arrays_get_the_in_memory_errors(X, k, pattern, client):
    with pytest.raises(ValueError, match=pattern):
        bg.EMGMM(k).fit(da.from_array(X, chunks=2))


@pytest.mark.parametrize(("X", "k", "pattern"), [h for h in HOSTILE_ERRORS
                                                 if isinstance(h[0], pd.DataFrame)])
def test_hostile_dask_dataframes_get_the_in_memory_errors(X, k, pattern):
    with pytest.raises(ValueError, match=pattern):
        bg.EMGMM(k).fit(dd.from_pandas(X, npartitions=2))


def test_nan_is_refused_by_the_fit_and_named(data, client):
    X = data.X.copy()
    X[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN and 0 inf.*\['column 1'\].*complete rows"):
        bg.EMGMM(K).fit(da.from_array(X, chunks=(CHUNK, 3)))


def test_prediction_checks_chunks_when_computed(pair, data):
    _, dask_fit, _ = pair
    X = data.X.copy()
    X[7, 0] = np.inf
    lazy = dask_fit.predict(da.from_array(X, chunks=(CHUNK, 3)))  # no error yet: lazy
    with pytest.raises(ValueError, match="1 inf"):
        lazy.compute()
    with pytest.raises(ValueError, match="3 features"):
        dask_fit.predict(da.from_array(data.X[:, :2], chunks=(CHUNK, 2)))
    with pytest.raises(ValueError, match="2-D"):
        dask_fit.predict(da.from_array(data.X[:, 0], chunks=CHUNK))


def test_prediction_marginalises_nan_like_in_memory(pair, data):
    _, dask_fit, _ = pair
    X = data.X.copy()
    X[[3, 900], [0, 2]] = np.nan
    lazy = dask_fit.score_samples(da.from_array(X, chunks=(CHUNK, 3)))
    np.testing.assert_allclose(lazy.compute(), dask_fit.score_samples(X), rtol=1e-10)


def test_compare_k_on_dask(data, client):
    X = data.X[:1500]
    kw = {"n_init": 2, "tol": 1e-9}
    memory = bg.compare_k(X, range(1, 4), methods="em", em_kwargs=kw, progressbar=False)
    cmp = bg.compare_k(da.from_array(X, chunks=(CHUNK, 3)), range(1, 4), methods="em",
                       em_kwargs=kw, progressbar=False)
    assert cmp.best("bic") == memory.best("bic")
    assert cmp.best("icl") == memory.best("icl")
    # the dask runs restart from the in-memory optimum (all 1500 rows are the sample)
    # and stop within tol=1e-9 per row of it
    for col in ("loglik", "bic"):
        np.testing.assert_allclose(cmp.table[col], memory.table[col], rtol=1e-8)
    # ICL's entropy term moves more than the likelihood near the optimum
    np.testing.assert_allclose(cmp.table["icl"], memory.table["icl"], rtol=1e-5)
    # ... and the lazy, chunked ICL is the in-memory formula on the gathered responsibilities
    for (_, k), result in cmp.results.items():
        resp = result.responsibilities.values
        assert cmp.table.loc[("em", k), "icl"] == pytest.approx(
            criteria.icl(result.log_likelihood, result.n_parameters, resp), rel=1e-12)
    assert (cmp.table["status"] == "ok").all()
    with pytest.raises(ValueError, match="EM only"):
        bg.compare_k(da.from_array(X, chunks=(CHUNK, 3)), 2, methods=("em", "advi"))


def test_warm_start_continues_from_the_previous_dask_fit(data, client):
    X = da.from_array(data.X, chunks=(CHUNK, 3))
    model = bg.EMGMM(K, random_state=0, warm_start=True).fit(X)
    first = model.result_.log_likelihood
    model.fit(X)  # starts at the optimum: stops after the first iterations within tol
    assert model.n_iter_ <= 3
    assert model.result_.log_likelihood == pytest.approx(first, rel=1e-8)


def test_a_fit_saves_and_loads_while_a_client_is_active(data, client, tmp_path):
    # with a distributed client as default, xarray would take a distributed lock named
    # after the in-memory write target, which the scheduler does not know
    import dask

    assert dask.config.get("scheduler") == "dask.distributed"
    fit = bg.EMGMM(K, random_state=0).fit(data.X).result_
    path = fit.to_netcdf(tmp_path / "fit.nc")
    back = bg.load(path)
    xr.testing.assert_identical(back.means, fit.means)
    assert dask.config.get("scheduler") == "dask.distributed"  # the caller's setting is back
