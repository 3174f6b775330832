"""Concurrent use of BayesGMM: processes sharing a compile cache, fits in threads."""

import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

import bayesgmm as bg

# One fit per child process; it writes its posterior and the compile directory it used.
WORKER = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    import bayesgmm as bg

    seed, out = int(sys.argv[1]), sys.argv[2]
    X = bg.datasets.make_blobs_gmm(120, 2, 2, random_state=seed).X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.BayesGMM(2, covariance_type="full", draws=60, tune=60, chains=2,
                          random_state=seed, progressbar=False).fit(X)
    import numba
    post = fit.result_.idata["posterior"].to_dataset()
    np.savez(out, weights=post["weights"].values, means=post["means"].values,
             covariances=post["covariances"].values,
             compiledir=str(numba.config.CACHE_DIR))
""")


def _env(compiledir):
    env = dict(os.environ)
    if compiledir is not None:
        # set before the child imports numba and pytensor: every child uses these
        # directories (Numba's for the kernel, PyTensor's for anything else)
        env["NUMBA_CACHE_DIR"] = str(compiledir / "numba")
        env["PYTENSOR_FLAGS"] = f"base_compiledir={compiledir / 'pytensor'}"
    return env


def _run_pair(tmp_path, compiledir, tag, concurrent):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    outs = [tmp_path / f"{tag}_{seed}.npz" for seed in (1, 2)]
    cmds = [[sys.executable, str(script), str(seed), str(out)]
            for seed, out in zip((1, 2), outs, strict=True)]
    if concurrent:
        procs = [subprocess.Popen(c, env=_env(compiledir), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for c in cmds]
        results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
    else:
        results = []
        for c in cmds:
            done = subprocess.run(c, env=_env(compiledir), capture_output=True, text=True,
                                  timeout=600)
            results.append((done.returncode, done.stderr))
    for code, err in results:
        assert code == 0, err[-3000:]
    return [dict(np.load(out)) for out in outs]


def _check_same(concurrent, sequential, compiledir):
    for a, b in zip(concurrent, sequential, strict=True):
        if compiledir is not None:
            assert str(a["compiledir"]).startswith(str(compiledir))
        for key in ("weights", "means", "covariances"):
            assert np.all(np.isfinite(a[key]))
            # same seed, same data, same compiled function: the draws are identical up
            # to floating-point reassociation; 1e-10 relative allows nothing else
            np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-12)


@pytest.mark.slow  # 44 s measured (--durations, 2 cores): four fresh processes, two cold compiles
def test_two_processes_share_a_fresh_compile_dir(tmp_path):
    # A fresh directory means the first compilation of the kernel on a machine (about
    # 7 s, both processes at once writing the same cache entries), then two warm
    # sequential runs reading them. CI's own first run compiles into an empty cache too;
    # the warm-directory test below runs in every suite.
    cache = tmp_path / "compile_cache"
    cache.mkdir()
    concurrent = _run_pair(tmp_path, cache, "concurrent", concurrent=True)
    sequential = _run_pair(tmp_path, cache, "sequential", concurrent=False)
    _check_same(concurrent, sequential, cache)


def test_two_processes_share_the_warm_compile_dir(tmp_path):
    # The same check on the machine's (warm) compile cache: both processes read and
    # may write it at once.  The sequential reference runs here, in the test process.
    concurrent = _run_pair(tmp_path, None, "concurrent", concurrent=True)
    sequential = []
    for seed in (1, 2):
        X = bg.datasets.make_blobs_gmm(120, 2, 2, random_state=seed).X
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bg.BayesGMM(2, covariance_type="full", draws=60, tune=60, chains=2,
                              random_state=seed, progressbar=False).fit(X)
        post = fit.result_.idata["posterior"].to_dataset()
        sequential.append({k: post[k].values for k in ("weights", "means", "covariances")})
    _check_same(concurrent, sequential, None)


def test_threaded_fits_of_the_same_shape_do_not_mix_data():
    # Two fits of the same (K, D, covariance_type) in two threads run at once on the
    # same compiled kernel, each with its own data buffer.  (With the earlier shared
    # PyTensor graph, whose data were swapped in place, the first fit once sampled
    # the second fit's data: posterior means off by about 0.9.)
    Xs = [bg.datasets.make_blobs_gmm(120, 2, 2, random_state=s).X for s in (1, 2)]

    def fit(i):
        est = bg.BayesGMM(2, draws=60, tune=60, chains=2, random_state=i,
                          progressbar=False).fit(Xs[i])
        return est.result_.idata["posterior"]["means"].values

    threaded, errors = [None, None], []

    def run(i):
        try:
            threaded[i] = fit(i)
        except BaseException as err:  # a thread's exception is otherwise lost
            errors.append(err)

    # warnings.catch_warnings is not thread-safe: set the filter once, around everything
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short runs warn about ESS; not what is tested
        sequential = [fit(0), fit(1)]
        threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    for a, b in zip(threaded, sequential, strict=True):
        np.testing.assert_array_equal(a, b)  # same data, same seed: identical draws
