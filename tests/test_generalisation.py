"""Held-out test sets: the split, the exact test loss, and the estimators it judges.

The identity at the centre: the test loss every sweep logs, computed from the test set's
sufficient statistics in the working basis, equals ``1/(2n')‖Y' − X'W‖²`` computed on
the test rows themselves with the naive full-data loop's iterates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import product, random_problem

import lindyn
from lindyn import generalisation, plots
from lindyn.cli import main
from lindyn.datasets import DatasetError, load_dataset
from lindyn.datasets.preprocess import split_rows
from lindyn.gd import log_schedule, naive_gd
from lindyn.generalisation import BASELINES, KIND, RIDGE_GRID, baselines, path_losses, summary
from lindyn.init import init_layers
from lindyn.report.loading import DatasetResults
from lindyn.report.tables import generalisation_table
from lindyn.stats import HeldOut, dataset_stats
from lindyn.store import open_store, read_stats, write_stats


def _direct_loss(X: np.ndarray, Y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``1/(2n)‖Y − XW‖²`` for a stack of W, on the rows themselves."""
    residual = Y[None] - X[None] @ W
    return 0.5 * np.sum(residual**2, axis=(-2, -1)) / X.shape[0]


def _stats(data):
    return dataset_stats(data.X, data.Y, data.X_clean, data.meta, data.X_test, data.Y_test)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", n=600, seed=1)


# ---------------------------------------------------------------- the split


@pytest.mark.parametrize(("total", "fraction"), [(10, 0.2), (1797, 0.2), (7, 0.5), (100, 0.9)])
def test_split_holds_out_disjoint_rows(total, fraction):
    train, test = split_rows(total, fraction, seed=3)
    assert test.size == round(fraction * total)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.union1d(train, test), np.arange(total))
    again = split_rows(total, fraction, seed=3)[1]
    assert np.array_equal(again, test)


def test_split_refuses_an_empty_side():
    with pytest.raises(DatasetError, match=r"test_fraction.*both need at least one"):
        split_rows(3, 0.1, seed=0)


def test_digits_holds_out_a_fifth_by_default(digits):
    assert digits.meta["test_fraction"] == 0.2
    assert digits.X_test.shape == (round(0.2 * 1797), 64)
    assert digits.X.shape == (600, 64)  # n draws from the training rows
    assert digits.meta["n_test"] == digits.X_test.shape[0]
    full = load_dataset("digits", test_fraction=0, scale="none")
    assert full.X_test is None and full.X.shape == (1797, 64)
    # the test rows are none of the training rows
    held = load_dataset("digits", scale="none")
    rows = {row.tobytes() for row in held.X}
    shared = sum(row.tobytes() in rows for row in held.X_test)
    duplicates = len(full.X) - len({row.tobytes() for row in full.X})
    assert shared <= duplicates  # digits has a few identical images


def test_test_rows_get_the_training_rows_centring_and_scaling():
    raw = load_dataset("digits", test_fraction=0.2, split_seed=4, scale="none")
    done = load_dataset("digits", test_fraction=0.2, split_seed=4, center=True, scale="unit")
    mean = raw.X.mean(axis=0)
    np.testing.assert_allclose(done.X_test, (raw.X_test - mean) * done.meta["x_scale"], atol=1e-12)
    y_mean = raw.Y.mean(axis=0)
    np.testing.assert_allclose(
        done.Y_test, (raw.Y_test - y_mean) * done.meta["y_scale"], atol=1e-12
    )


def test_npz_brings_its_own_test_file(tmp_path):
    rng = np.random.default_rng(0)
    X, Xt = rng.standard_normal((50, 4)), rng.standard_normal((20, 4))
    labels, test_labels = rng.choice([3, 7, 9], 50), rng.choice([7, 9], 20)
    np.savez(tmp_path / "train.npz", X=X, Y=labels)
    np.savez(tmp_path / "test.npz", X=Xt, Y=test_labels)
    data = load_dataset(
        "npz", path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz"), scale="none"
    )
    np.testing.assert_array_equal(data.X_test, Xt)
    # one-hot columns of the training file's classes 3, 7, 9
    np.testing.assert_array_equal(
        data.Y_test.argmax(axis=1), np.searchsorted([3, 7, 9], test_labels)
    )
    assert data.meta["test_source"] == [str(tmp_path / "test.npz")]
    np.savez(tmp_path / "unseen.npz", X=Xt, Y=np.full(20, 5))
    with pytest.raises(DatasetError, match=r"labels \[5\] do not occur"):
        load_dataset(
            "npz", path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "unseen.npz")
        )
    with pytest.raises(DatasetError, match="bring their own test file"):
        load_dataset(
            "npz",
            path=str(tmp_path / "train.npz"),
            test_path=str(tmp_path / "test.npz"),
            test_fraction=0.2,
        )


# ---------------------------------------------------------------- the exact test loss


def test_held_out_loss_is_the_test_rows_loss():
    X, Y = random_problem(80, 6, 4, seed=2)
    Xt, Yt = random_problem(30, 6, 4, seed=5)
    stats = dataset_stats(X, Y, X_test=Xt, Y_test=Yt)
    W = np.random.default_rng(1).standard_normal((5, 6, 4))
    np.testing.assert_allclose(stats.held_out.loss(W), _direct_loss(Xt, Yt, W), rtol=1e-12)
    Q = stats.Q
    rotated = stats.held_out.rotated(Q)
    np.testing.assert_allclose(rotated.loss(Q.T @ W), _direct_loss(Xt, Yt, W), rtol=1e-12)


@pytest.mark.parametrize(
    ("depth", "init", "eta"), [(1, "aligned", 0.2), (2, "random", 0.2), (3, "aligned", 0.05)]
)
def test_logged_test_loss_equals_the_naive_loops_on_the_test_rows(digits, depth, init, eta):
    stats = _stats(digits)
    delta, steps = 1.0, 200
    runs = lindyn.sweep(
        stats, depth, eta, delta, init, [0], width=4, max_steps=steps, log_density=8
    )
    logged = runs["test_loss"].squeeze().values
    layers0 = init_layers(stats, depth, 4, delta, init, 0)
    history = naive_gd(digits.X, digits.Y, layers0, eta, steps)
    log_steps = log_schedule(steps, 8)
    W = np.stack([product(history[t]) for t in log_steps])
    stop = int(runs["stop_step"].squeeze())
    kept = log_steps <= stop
    direct = _direct_loss(digits.X_test, digits.Y_test, W[kept])
    np.testing.assert_allclose(logged[kept], direct, rtol=1e-10)
    assert np.isnan(logged[~kept]).all()


def test_without_a_test_set_the_test_loss_is_nan():
    data = load_dataset("commuting", d=5, p=3, n=40)
    stats = _stats(data)
    assert stats.held_out is None
    runs = lindyn.sweep(stats, 2, 0.1, 2.0, "aligned", max_steps=50)
    assert runs["test_loss"].isnull().all()
    with pytest.raises(ValueError, match="no test set"):
        baselines(stats)


def test_the_held_out_statistics_are_stored_and_hashed(digits, tmp_path):
    stats = _stats(digits)
    read = read_stats(write_stats(stats, tmp_path / "digits.zarr.zip"))
    assert isinstance(read.held_out, HeldOut) and read.held_out.n == stats.held_out.n
    np.testing.assert_array_equal(read.held_out.sigma_x, stats.held_out.sigma_x)
    assert read.stats_hash == stats.stats_hash
    other = _stats(load_dataset("digits", n=600, seed=1, split_seed=1))
    assert other.stats_hash != stats.stats_hash  # another split: other test losses


# ---------------------------------------------------------------- the estimators


def test_baselines_are_the_estimators_fitted_on_the_training_rows(digits):
    stats = _stats(digits)
    table = baselines(stats)
    methods = table["method"].values
    assert tuple(dict.fromkeys(methods)) == BASELINES
    assert (methods == "ridge").sum() == RIDGE_GRID.size
    test = table["test_loss"].values
    X, Y, Xt, Yt = digits.X, digits.Y, digits.X_test, digits.Y_test
    (zero,) = test[methods == "zero"]
    assert zero == pytest.approx(0.5 * np.sum(Yt**2) / len(Yt), rel=1e-12)
    ols = np.linalg.lstsq(X, Y, rcond=None)[0]
    (ols_loss,) = test[methods == "ols"]
    assert ols_loss == pytest.approx(_direct_loss(Xt, Yt, ols[None])[0], rel=1e-8)
    gamma = 1e-2 * stats.mu[0]
    ridge = np.linalg.solve(X.T @ X / len(X) + gamma * np.eye(64), X.T @ Y / len(X))
    at = np.flatnonzero((methods == "ridge") & np.isclose(table["parameter"].values, 1e-2))
    assert test[at][0] == pytest.approx(_direct_loss(Xt, Yt, ridge[None])[0], rel=1e-10)
    # full-rank RRR is least squares; so is PCA regression on every usable direction
    rrr = test[methods == "rrr"]
    assert rrr[-1] == pytest.approx(ols_loss, rel=1e-8)
    pca = test[methods == "pca"]
    assert pca[-1] == pytest.approx(ols_loss, rel=1e-6)
    train = table["train_loss"].values
    assert train[methods == "ols"][0] <= train.min() + 1e-12  # least squares fits best


def test_path_losses_on_trajectories_made_by_hand():
    runs = xr.Dataset(
        {
            "test_loss": (
                ("depth", "step"),
                [[5.0, 3.0, 2.0, 2.5, np.nan], [4.0, 4.0, 1.0, 1.0, 1.5]],
            ),
            "loss": (("depth", "step"), [[5.0, 2.9, 1.8, 1.2, np.nan], [4.0, 3.9, 0.9, 0.8, 0.1]]),
            "status": (("depth",), ["max_steps", "diverged"]),
        },
        coords={"depth": [1, 2], "step": [0, 1, 10, 100, 1000]},
    )
    out = path_losses(runs)
    first = out.sel(depth=1)
    assert float(first["best_test_loss"]) == 2.0
    assert float(first["best_step"]) == 10
    assert float(first["train_loss_at_best"]) == 1.8
    assert float(first["final_test_loss"]) == 2.5  # its last logged step, 100
    assert float(first["best_at_stop"]) == 0  # early stopping helped: 2.0 < 2.5
    assert out.sel(depth=2)["best_test_loss"].isnull()  # a diverged run is no measurement


def test_summary_and_table_list_every_depth_the_study_ran(digits):
    stats = _stats(digits)
    study = generalisation.study(stats, [1, 4], 0.2, 1.0, 10, 300, 10, 1e-8)
    assert {"gd L=1", "gd L=4"} <= set(summary(study)["method"])
    results = {"digits": DatasetResults(name="digits", stats=None, generalisation=study)}
    header = generalisation_table(results).splitlines()[0]
    assert "gd L=4" in header and "gd L=2" not in header


def test_the_study_runs_paths_to_convergence_and_summarises_them(digits, tmp_path):
    stats = _stats(digits)
    stats_file = write_stats(stats, tmp_path / "digits.zarr.zip")
    out, csv = tmp_path / "study.zarr.zip", tmp_path / "study.csv"
    arguments = "--depth 1 2 --eta 0.2 --delta 1 --width 10 --max-steps 3000".split()
    command = ["generalise", "--stats", str(stats_file), *arguments]
    assert main([*command, "--out", str(out), "--csv", str(csv)]) == 0
    study = open_store(
        out, "generalisation study", kind=KIND, expected={"stats_hash": stats.stats_hash}
    )
    assert study.attrs["eta"] == 0.2 and study.attrs["delta"] == 1.0
    assert list(study["depth"].values) == [1, 2]
    # the paths ran past the crossings: to convergence or to max_steps
    assert set(study["status"].values) <= {"converged", "max_steps"}
    assert (study["stop_step"] > 0).all()
    best = study["path_test_loss"].min("step")
    xr.testing.assert_allclose(best, study["best_test_loss"])
    table = pd.read_csv(csv)
    assert set(table["method"]) == {*BASELINES, "gd L=1", "gd L=2"}
    assert (table.set_index("method").loc["gd L=1", "parameter"]) == "eta=0.2, delta=1"
    fig = plots.figure_generalisation({"digits": study, "again": study})
    assert len(fig.axes) == 4  # per dataset: the paths, the estimators by rank
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert {"L = 1", "L = 2", "best ridge", "best rrr"} <= set(labels)


def test_summary_puts_the_winner_first(digits):
    stats = _stats(digits)
    runs = lindyn.sweep(stats, [1, 2], [0.2], [1.0], "aligned", width=10, max_steps=3000)
    runs = runs.expand_dims(init=["aligned"])
    table = summary(baselines(stats).merge(path_losses(runs)))
    assert set(table["method"]) == {*BASELINES, "gd L=1", "gd L=2"}
    assert table["test_loss"].is_monotonic_increasing
    gd = table.set_index("method").loc["gd L=1"]
    assert gd["parameter"] == "init=aligned, eta=0.2, delta=1"
    assert gd["test_loss"] == pytest.approx(float(runs["test_loss"].sel(depth=1).min()))
