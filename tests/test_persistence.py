"""Saved files are trustworthy (issue 10 section 5).

- ``bg.load`` refuses any change to the numbers or attributes (a SHA-256 digest);
  malformed attributes raise ``DifferentModelError``.
- New files follow the umask; errors name the user's path, not a temporary file.
- Posterior draws are stored once, compressed.
- A full disk raises ``OSError`` naming the path; the process survives and an older
  file at the path is intact (checked on a 256 KiB tmpfs where one can be mounted).
- Random byte flips either raise a clear error or load identical arrays.
"""

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import h5netcdf
import numpy as np
import pytest
import xarray as xr

import bayesgmm as bg
from bayesgmm import results
from bayesgmm.exceptions import (
    ConvergenceWarning,
    DiagnosticsWarning,
    DifferentModelError,
    UnverifiedFileWarning,
)

# ---------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def em_fit(faithful):
    return bg.EMGMM(2, random_state=0).fit(faithful)


@pytest.fixture(scope="module")
def bayes_fit(faithful):
    # A short NUTS fit on the compiled kernel: seconds. No new ADVI graph (a minute to compile).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DiagnosticsWarning)
        return bg.BayesGMM(2, method="nuts", draws=200, tune=200, chains=2, random_state=0,
                           progressbar=False).fit(faithful)


@pytest.fixture(params=["em", "nuts"])
def fit(request, em_fit, bayes_fit):
    return em_fit if request.param == "em" else bayes_fit


def assert_same_result(back, r):
    """Every field of ``back`` equals the one of ``r`` (values, dims, coords, attrs, names)."""
    for name in ("weights", "means", "covariances", "responsibilities"):
        xr.testing.assert_identical(getattr(back, name), getattr(r, name))
    if r.data is None:
        assert back.data is None
    else:
        xr.testing.assert_identical(back.data, r.data)
    if r.idata is None:
        assert back.idata is None
    else:
        xr.testing.assert_identical(back.idata, r.idata)
    assert back.config == json.loads(json.dumps(r.config))
    assert (back.log_likelihood, back.covariance_type, back.method, back.converged,
            back.n_iter) == (r.log_likelihood, r.covariance_type, r.method, r.converged,
                             r.n_iter)


def resign(path):
    """Recompute both stored digests, as a writer of a malformed file would have."""
    with h5netcdf.File(path, "a") as handle:
        handle.attrs["sha256"] = results._digest(handle)
    body, _ = results._split_trailer(path.read_bytes())
    path.write_bytes(body + results._trailer(body))


def write_format1(r, path):
    """The layout bayesgmm wrote before the digest (file format 1), as that writer did."""
    attrs = r._attrs()
    attrs["bayesgmm_format_version"] = 1
    attrs["id"] = results._config_id(attrs)
    estimate = xr.Dataset({"weights": r.weights, "means": r.means, "covariances": r.covariances,
                           "responsibilities": r.responsibilities})
    if r.data is not None:
        estimate["data"] = r.data
    groups = {"/": xr.Dataset(attrs=attrs), "bayesgmm": estimate}
    if r.idata is not None:
        groups.update({name: child.to_dataset() for name, child in r.idata.children.items()})
    xr.DataTree.from_dict(groups).to_netcdf(path, engine="h5netcdf")
    return path


def run_python(code, *args, timeout=300):
    """Run ``code`` in a fresh interpreter: a crash there cannot take the test run down."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------
# lossless round trip
# ---------------------------------------------------------------------------


def test_round_trip_keeps_every_field(fit, tmp_path):
    r = fit.result_
    back = bg.load(r.to_netcdf(tmp_path / "fit.nc"))
    assert_same_result(back, r)
    assert back.is_bayesian == r.is_bayesian
    # every __init__ parameter survives
    params = json.loads(json.dumps(fit.get_params(), default=results._json_default))
    assert params.keys() <= back.config.keys()
    assert {k: back.config[k] for k in params} == params


def test_saving_a_loaded_result_gives_the_same_file_contents(fit, tmp_path):
    first = fit.result_.to_netcdf(tmp_path / "first.nc")
    second = bg.load(first).to_netcdf(tmp_path / "second.nc")
    with h5netcdf.File(first, "r") as a, h5netcdf.File(second, "r") as b:
        assert a.attrs["sha256"] == b.attrs["sha256"]
    assert_same_result(bg.load(second), fit.result_)


# ---------------------------------------------------------------------------
# the digest: any change to the numbers or attributes is refused
# ---------------------------------------------------------------------------


def _set_attr(group, name, value):
    def edit(handle):
        target = handle if group == "/" else handle.groups[group]
        target.attrs[name] = value
    return edit


def _flip_root_flag(name):
    def edit(handle):  # a real change whatever the fit recorded
        handle.attrs[name] = 1 - int(handle.attrs[name])
    return edit


def _add_to_value(group, variable, index, delta):
    def edit(handle):
        var = handle.groups[group].variables[variable]
        values = var[...]
        values[index] += delta
        var[...] = values
    return edit


def _set_var_attr(group, variable, name, value):
    def edit(handle):
        handle.groups[group].variables[variable].attrs[name] = value
    return edit


def _rename_feature(handle):
    group = next(g for g in ("bayesgmm", "posterior") if "feature" in handle.groups[g].variables)
    var = handle.groups[group].variables["feature"]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in var[...]]
    var[...] = np.array(["duration", *names[1:]], dtype=object)


def _add_variable(handle):
    handle.groups["bayesgmm"].create_variable("extra", ("component",), data=np.zeros(2))


EDITS = {
    "root log_likelihood": _set_attr("/", "log_likelihood", -1000.0),
    "root converged": _flip_root_flag("converged"),
    "estimate responsibilities": _add_to_value("bayesgmm", "responsibilities", (0, 0), 1e-12),
    "coordinate": _rename_feature,
    "variable attribute": _set_var_attr("bayesgmm", "responsibilities", "units", "1"),
    "group attribute": _set_attr("bayesgmm", "note", "edited"),
    "new variable": _add_variable,
}
EM_EDITS = {"em weights": _add_to_value("bayesgmm", "weights", (0,), 1e-9),
            "em data": _add_to_value("bayesgmm", "data", (5, 1), 1.0)}
BAYES_EDITS = {
    "posterior draw": _add_to_value("posterior", "weights", (0, 0, 0), 1e-9),
    "pointwise log-likelihood": _add_to_value("log_likelihood", "X", (1, 3, 7), -1e-6),
    "sample_stats attribute": _set_attr("sample_stats", "sampler", "edited"),
}


@pytest.mark.parametrize("edit", [*EDITS, *EM_EDITS])
def test_any_edit_of_an_em_file_is_refused(em_fit, tmp_path, edit):
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    with h5netcdf.File(path, "a") as handle:
        {**EDITS, **EM_EDITS}[edit](handle)
    with pytest.raises(DifferentModelError, match="do not match the SHA-256 digest"):
        bg.load(path)


@pytest.mark.parametrize("edit", [*EDITS, *BAYES_EDITS])
def test_any_edit_of_a_bayesian_file_is_refused(bayes_fit, tmp_path, edit):
    path = bayes_fit.result_.to_netcdf(tmp_path / "fit.nc")
    with h5netcdf.File(path, "a") as handle:
        {**EDITS, **BAYES_EDITS}[edit](handle)
    with pytest.raises(DifferentModelError, match="do not match the SHA-256 digest"):
        bg.load(path)


def test_a_removed_digest_is_refused(em_fit, tmp_path):
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    with h5netcdf.File(path, "a") as handle:
        del handle.attrs["sha256"]
    with pytest.raises(DifferentModelError, match="no 'sha256' attribute"):
        bg.load(path)


def test_the_digest_is_a_sha256_of_the_file_contents(em_fit, tmp_path):
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    # the trailing line is hashlib's SHA-256 of every byte before it (results._trailer's
    # documented layout, parsed here with plain bytes operations)
    payload = path.read_bytes()
    body, sep, last = payload[:-1].rpartition(b"\n")
    assert payload.endswith(b"\n") and sep
    tag, _, hexdigest = last.partition(b" ")
    assert tag == b"bayesgmm-sha256"
    assert hexdigest.decode() == hashlib.sha256(body).hexdigest()
    # the attribute digest: a full hex SHA-256, the same for the same contents written
    # again, another for other contents (a constant or unread digest fails here)
    with h5netcdf.File(path, "r") as handle:
        stored = handle.attrs["sha256"]
    assert len(stored) == 64 and int(stored, 16) >= 0
    again = em_fit.result_.to_netcdf(tmp_path / "again.nc")
    with h5netcdf.File(again, "r") as handle:
        assert handle.attrs["sha256"] == stored
    with h5netcdf.File(again, "a") as handle:
        EM_EDITS["em weights"](handle)
        assert results._digest(handle) != stored
    resign(path)  # recomputing it over unchanged contents changes nothing
    with h5netcdf.File(path, "r") as handle:
        assert handle.attrs["sha256"] == stored


# ---------------------------------------------------------------------------
# malformed attributes: DifferentModelError, never a bare ValueError or KeyError
# ---------------------------------------------------------------------------

MALFORMED = {
    "n_iter": ("seven", "'n_iter'.*malformed"),
    "converged": (5, "'converged'.*malformed"),
    "log_likelihood": ("high", "'log_likelihood'.*malformed"),
    "config": ("{not json", "'config'.*malformed"),
    "method": (3, "'method'.*malformed"),
    "bayesgmm_format_version": ("two", "'bayesgmm_format_version'.*malformed"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_attributes_raise_different_model_error(em_fit, tmp_path, name):
    value, message = MALFORMED[name]
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    with h5netcdf.File(path, "a") as handle:
        handle.attrs[name] = value
    resign(path)  # the digest matches: only the attribute itself is wrong
    with pytest.raises(DifferentModelError, match=message):
        bg.load(path)


def test_a_missing_attribute_raises_different_model_error(em_fit, tmp_path):
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    with h5netcdf.File(path, "a") as handle:
        del handle.attrs["method"]
    resign(path)
    with pytest.raises(DifferentModelError, match="lacks the attribute 'method'"):
        bg.load(path)


@pytest.mark.parametrize("name", ["n_iter", "converged", "config", "bayesgmm_format_version"])
def test_malformed_attributes_of_an_old_file_raise_different_model_error(em_fit, tmp_path,
                                                                         name):
    path = write_format1(em_fit.result_, tmp_path / "old.nc")
    with h5netcdf.File(path, "a") as handle:
        handle.attrs[name] = MALFORMED.get(name, ("seven", ""))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        with pytest.raises(DifferentModelError, match=f"'{name}'.*malformed"):
            bg.load(path)


# ---------------------------------------------------------------------------
# files written by the previous format (1): still load, with a warning
# ---------------------------------------------------------------------------


def test_format1_files_load_with_a_warning(fit, tmp_path):
    path = write_format1(fit.result_, tmp_path / "old.nc")
    with pytest.warns(UnverifiedFileWarning, match="file format 1.*no SHA-256 digest"):
        back = bg.load(path)
    assert_same_result(back, fit.result_)
    # saving it again writes the current format, which verifies without a warning
    again = back.to_netcdf(tmp_path / "new.nc")
    assert_same_result(bg.load(again), fit.result_)


def test_a_format1_file_edited_into_an_inconsistent_state_is_refused(em_fit, tmp_path):
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    with h5netcdf.File(path, "a") as handle:  # downgrade to skip the digest check
        handle.attrs["bayesgmm_format_version"] = 1
    with pytest.raises(DifferentModelError, match="carries a SHA-256 digest"):
        bg.load(path)


def test_files_of_a_newer_format_are_refused(em_fit, tmp_path):
    path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    with h5netcdf.File(path, "a") as handle:
        handle.attrs["bayesgmm_format_version"] = results.FORMAT_VERSION + 1
    with pytest.raises(DifferentModelError, match="newer than this bayesgmm reads"):
        bg.load(path)


# ---------------------------------------------------------------------------
# permissions and error messages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_follow_the_umask(em_fit, tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = em_fit.result_.to_netcdf(tmp_path / "fit.nc")
    finally:
        os.umask(previous)
    assert oct(path.stat().st_mode & 0o777) == oct(mode)


def test_errors_name_the_users_path(em_fit, tmp_path):
    path = tmp_path / "no such folder" / "fit.nc"
    with pytest.raises(FileNotFoundError) as info:
        em_fit.result_.to_netcdf(path)
    assert info.value.filename == str(path)
    assert str(path) in str(info.value) and ".tmp" not in str(info.value)
    assert not path.parent.exists()


def test_a_folder_in_place_of_a_file(em_fit, tmp_path):
    with pytest.raises(ValueError, match="directory"):
        em_fit.result_.to_netcdf(tmp_path)
    with pytest.raises(IsADirectoryError, match="is a folder") as info:
        bg.load(tmp_path)
    assert info.value.filename == str(tmp_path)


# ---------------------------------------------------------------------------
# draws stored once, compressed
# ---------------------------------------------------------------------------


def test_posterior_draws_are_stored_once_and_compressed(bayes_fit, tmp_path):
    r = bayes_fit.result_
    path = r.to_netcdf(tmp_path / "fit.nc")
    with h5netcdf.File(path, "r") as handle:
        estimate = handle.groups["bayesgmm"]
        posterior = handle.groups["posterior"]
        for name in ("weights", "means", "covariances"):
            assert name not in estimate.variables
            assert name in posterior.variables
        assert json.loads(estimate.attrs["stored_in_posterior"]) == [
            "weights", "means", "covariances"]
        big = [(group.name, name, var) for group in handle.groups.values()
               for name, var in group.variables.items()
               if var.dtype.kind in "biufc" and np.prod(var.shape) * var.dtype.itemsize >= 1024]
        assert len(big) >= 5
        for group, name, var in big:
            assert var.compression == "gzip", (group, name)
    old = write_format1(r, tmp_path / "old.nc")  # duplicated draws, uncompressed
    draws = r.weights.nbytes + r.means.nbytes + r.covariances.nbytes
    assert path.stat().st_size < old.stat().st_size - draws


def test_parameters_that_differ_from_the_posterior_are_stored_apart(bayes_fit, tmp_path):
    # e.g. compare() reorders components of the parameters but keeps idata as it was
    r = bayes_fit.result_
    swapped = r.weights.isel(component=[1, 0]).assign_coords(component=[0, 1])
    other = dataclasses.replace(r, weights=swapped)
    path = other.to_netcdf(tmp_path / "fit.nc")
    with h5netcdf.File(path, "r") as handle:
        assert "weights" in handle.groups["bayesgmm"].variables
        assert "means" not in handle.groups["bayesgmm"].variables
    assert_same_result(bg.load(path), other)


# ---------------------------------------------------------------------------
# a full disk: OSError naming the path, the process survives, the old file stays
# ---------------------------------------------------------------------------

_WRITE_TO = """
import errno, shutil, sys, types
import bayesgmm as bg
source, target, mode = sys.argv[1:4]
result = bg.load(source)
if mode == "skip-check":  # as if free space ran out between the check and the write
    real = shutil.disk_usage
    shutil.disk_usage = lambda p: types.SimpleNamespace(free=1 << 40, total=1 << 41,
                                                        used=real(p).used)
try:
    result.to_netcdf(target)
except OSError as err:
    print(f"OSError {err.errno} {err.filename}|{err}")
    sys.exit(0)
print("written")
"""


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs, mounted for the test and unmounted after."""
    mount = shutil.which("mount")
    if mount is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the full-disk test mounts a 256 KiB tmpfs, which needs root and mount(8)")
    folder = tmp_path / "small"
    folder.mkdir()
    done = subprocess.run([mount, "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("the full-disk test needs a small filesystem, and mounting a tmpfs "
                    f"failed here: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.mark.parametrize("mode", ["check", "skip-check"])
def test_a_full_disk_raises_oserror_and_keeps_the_old_file(em_fit, bayes_fit, tmp_path,
                                                           small_fs, mode):
    source = bayes_fit.result_.to_netcdf(tmp_path / "bayes.nc")
    assert source.stat().st_size > 256 * 1024  # cannot fit
    target = em_fit.result_.to_netcdf(small_fs / "fit.nc")  # the older file: fits
    before = target.read_bytes()
    done = run_python(_WRITE_TO, source, target, mode)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])  # 139: segfault
    assert done.stdout.startswith(f"OSError {errno.ENOSPC} {target}|"), done.stdout
    assert str(target) in done.stdout and ".tmp" not in done.stdout
    if mode == "check":
        assert "Not enough free space" in done.stdout
    assert target.read_bytes() == before
    assert sorted(p.name for p in small_fs.iterdir()) == ["fit.nc"]
    assert_same_result(bg.load(target), em_fit.result_)


# ---------------------------------------------------------------------------
# random byte flips: a clear error or identical arrays, never changed numbers
# ---------------------------------------------------------------------------

_FLIP = """
import collections, json, sys, warnings
import numpy as np
import bayesgmm as bg
from bayesgmm.exceptions import DifferentModelError
source, n_flips, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
warnings.simplefilter("ignore")
reference = bg.load(source)
original = open(source, "rb").read()
rng = np.random.default_rng(seed)
counts = collections.Counter()

def same(a, b):
    for name in ("weights", "means", "covariances", "responsibilities", "data", "idata"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None) or (x is not None and not x.identical(y)):
            return False
    return (a.config, a.log_likelihood, a.method, a.covariance_type, a.converged,
            a.n_iter) == (b.config, b.log_likelihood, b.method, b.covariance_type,
                          b.converged, b.n_iter)

for i in range(n_flips):
    position = int(rng.integers(len(original)))
    damaged = bytearray(original)
    damaged[position] ^= 1 << int(rng.integers(8))
    with open(source + ".flip", "wb") as handle:
        handle.write(damaged)
    print(f"flip {i} at byte {position}:", end=" ", flush=True)  # names a crashing flip
    try:
        loaded = bg.load(source + ".flip")
    except DifferentModelError as err:
        outcome = "error" if str(err).startswith("path: ") else "unclear error"
    except Exception as err:
        outcome = f"other {type(err).__name__}"
    else:
        outcome = "identical" if same(loaded, reference) else "CHANGED"
    counts[outcome] += 1
    print(outcome, flush=True)
print("counts", json.dumps(counts))
"""


@pytest.mark.parametrize("kind, n_flips", [("em", 200), ("nuts", 40)])
def test_random_byte_flips_never_load_changed_numbers(em_fit, bayes_fit, tmp_path, kind,
                                                      n_flips):
    r = (em_fit if kind == "em" else bayes_fit).result_
    path = r.to_netcdf(tmp_path / "fit.nc")
    done = run_python(_FLIP, path, n_flips, 20261122)
    assert done.returncode == 0, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    counts = json.loads(done.stdout.splitlines()[-1].removeprefix("counts "))
    assert sum(counts.values()) == n_flips
    assert set(counts) <= {"error", "identical"}, counts
    assert counts.get("error", 0) > 0  # the flips did reach the data


def test_flips_in_the_trailing_digest_never_load_changed_numbers(em_fit, tmp_path):
    # The HDF5 bytes are intact, so these loads are safe in this process: a damaged last line
    # is either a digest mismatch or no digest line at all (then the contents digest decides).
    r = em_fit.result_
    path = r.to_netcdf(tmp_path / "fit.nc")
    original = path.read_bytes()
    size = len(results._trailer(b""))
    outcomes = []
    for offset in range(len(original) - size, len(original)):
        for bit in (0, 5):
            damaged = bytearray(original)
            damaged[offset] ^= 1 << bit
            path.write_bytes(damaged)
            try:
                back = bg.load(path)
            except DifferentModelError as err:
                assert "SHA-256 digest" in str(err)
                outcomes.append("error")
            else:
                assert_same_result(back, r)
                outcomes.append("identical")
    assert {"error", "identical"} == set(outcomes)
