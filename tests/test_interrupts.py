"""Ctrl-C stops the work: KeyboardInterrupt propagates and no fitted state is left behind.

The interrupt is delivered the way a terminal delivers it, as SIGINT to the main
thread (``_thread.interrupt_main``) from a timer, while the work is running.
"""

import _thread
import threading
import time
import warnings

import numpy as np
import pytest

import bayesgmm as bg


def _stopped_by_ctrl_c(fit, after):
    """Run ``fit()`` with Ctrl-C after ``after`` seconds; it must stop within 30 s.

    Ctrl-C is pressed again every second until ``fit`` returns, as a user would:
    an interrupt that lands while Python runs a weakref callback or a finalizer is
    reported as "Exception ignored" and lost (CPython's rule for unraisable
    exceptions), which once let a single interrupt pass and the fit run on.
    """
    stop = threading.Event()

    def press_ctrl_c():
        if not stop.wait(after):
            _thread.interrupt_main()
            while not stop.wait(1.0):
                _thread.interrupt_main()

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    start = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            fit()
    finally:
        elapsed = time.perf_counter() - start
        while True:  # a press already on its way may still land here
            try:
                stop.set()
                presser.join()
                time.sleep(0.05)
                break
            except KeyboardInterrupt:
                continue
    assert elapsed < 30.0  # stopped, not run to the end


def test_ctrl_c_stops_an_em_fit_and_sets_nothing():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 6))
    model = bg.EMGMM(6, tol=0.0, max_iter=3000, random_state=0)  # would run for minutes
    _stopped_by_ctrl_c(lambda: model.fit(X), after=0.5)
    assert not hasattr(model, "result_") and not hasattr(model, "weights_")
    # the engine's worker threads were released: a new fit works normally
    small = bg.EMGMM(2, random_state=0).fit(bg.datasets.load_faithful())
    assert small.converged_


def test_ctrl_c_stops_a_nuts_fit_and_sets_nothing():
    # nutpie itself turns Ctrl-C into "return the draws so far"; BayesGMM must not
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(0, 1, (3000, 2)), rng.normal(4, 1, (3000, 2))])
    model = bg.BayesGMM(2, draws=20_000, tune=2000, chains=2, random_state=0,
                        progressbar=False)  # about a minute of sampling
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny run: diagnostics are not the point
        bg.BayesGMM(2, draws=20, tune=20, chains=1, random_state=0,
                    progressbar=False).fit(X[:200])  # load the kernel before timing
    _stopped_by_ctrl_c(lambda: model.fit(X), after=2.0)
    assert not hasattr(model, "result_")


def test_ctrl_c_stops_pm_fit_advi_instead_of_returning_it(monkeypatch):
    # PyMC's fit loop catches KeyboardInterrupt and returns the approximation so far,
    # which then looked converged; the interrupt must stop the fit instead.
    from bayesgmm.bayes import inference

    original = inference.LossWindowConvergence.__call__

    def interrupt_at_step_200(self, approx, losses, i):
        if i == 200:
            _thread.interrupt_main()  # SIGINT, delivered at the next bytecode
        return original(self, approx, losses, i)

    monkeypatch.setattr(inference.LossWindowConvergence, "__call__", interrupt_at_step_200)
    model = bg.BayesGMM(2, method="advi", sampler="pymc", random_state=0, progressbar=False)
    with pytest.raises(KeyboardInterrupt):
        model.fit(bg.datasets.load_faithful())
    assert not hasattr(model, "result_")


def test_ctrl_c_stops_kernel_advi(monkeypatch):
    # SIGINT raised inside the optimisation loop (at its first convergence check)
    from bayesgmm.bayes import vi

    def interrupt_then_continue(losses, window, tolerance):
        _thread.interrupt_main()
        return False

    monkeypatch.setattr(vi, "window_converged", interrupt_then_continue)
    model = bg.BayesGMM(2, method="advi", random_state=0, progressbar=False)
    with pytest.raises(KeyboardInterrupt):
        model.fit(bg.datasets.load_faithful())
    assert not hasattr(model, "result_")


def test_ctrl_c_stops_compare_k_instead_of_moving_on(monkeypatch):
    # Before, nutpie's partial trace became a ValueError that compare_k recorded as a
    # failed fit before fitting the next K; now the interrupt ends the whole sweep.
    from bayesgmm.bayes import inference

    calls = []

    def interrupted_sampler(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "_run_nutpie", interrupted_sampler)
    with pytest.raises(KeyboardInterrupt):
        bg.compare_k(bg.datasets.load_faithful(), [1, 2, 3], methods=("nuts",),
                     progressbar=False)
    assert calls == [1]  # stopped at the first fit
