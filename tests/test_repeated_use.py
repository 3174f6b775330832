"""Repeated use: fitting many small models does not leak memory."""

import gc
import tracemalloc

import bayesgmm as bg


def test_200_em_fits_do_not_grow_memory(blobs):
    def fit_many(count):
        for seed in range(count):
            model = bg.EMGMM(3, random_state=seed).fit(blobs.X)
            model.predict_proba(blobs.X)
            model.result_.summary()

    fit_many(20)  # warm caches (triangle indices, imports)
    gc.collect()
    tracemalloc.start()
    fit_many(20)
    gc.collect()
    after_20 = tracemalloc.get_traced_memory()[0]
    fit_many(180)
    gc.collect()
    after_200 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # Stated bound: 180 more fits may not keep more than 1 MiB (a leak of one 300x3
    # responsibility array per fit would already be 1.2 MiB).
    assert after_200 - after_20 < 2**20, (after_20, after_200)
