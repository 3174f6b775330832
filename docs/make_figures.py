"""Regenerate the figures in docs/images: ``python docs/make_figures.py``."""

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

import bayesgmm as bg
from bayesgmm import plotting

OUT = Path(__file__).parent / "images"


def save(obj, name):
    fig = obj.figure if hasattr(obj, "figure") else None
    path = OUT / f"{name}.png"
    if fig is None:
        obj.savefig(path)
    else:
        fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close("all")
    print("wrote", path)


def main():
    OUT.mkdir(exist_ok=True)
    faithful = bg.datasets.load_faithful()
    iris = bg.datasets.load_iris()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sweep = bg.compare_k(faithful, range(1, 5), methods=("em", "advi", "nuts"),
                             bayes_kwargs={"draws": 500, "tune": 500, "chains": 2})
    em, nuts = sweep.results[("em", 2)], sweep.results[("nuts", 2)]
    save(sweep.plot(), "criteria_faithful")
    save(em.plot(), "clusters_faithful_em")
    save(bg.EMGMM(3, n_init=10, random_state=0).fit(iris).result_.plot(projection="pca"),
         "clusters_iris_pca")
    save(plotting.plot_posterior_ellipses(nuts, em), "posterior_ellipses_faithful")
    save(plotting.plot_responsibilities(nuts), "responsibilities_faithful_nuts")
    save(plotting.plot_trace(nuts), "trace_faithful_nuts")
    save(plotting.plot_rank(nuts), "rank_faithful_nuts")


if __name__ == "__main__":
    main()
