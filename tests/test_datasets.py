"""lindyn.datasets: loaders, file formats, preprocessing, option handling."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lindyn.datasets import (
    LOADERS,
    Data,
    DatasetError,
    load_dataset,
    loader_options,
    parse_options,
)
from lindyn.stats import Stats, dataset_stats

# no preprocessing, no test split: every row, values as stored
RAW = {"center": False, "scale": "none", "test_fraction": 0}


def sigmas(data: Data) -> tuple[np.ndarray, np.ndarray]:
    n = data.X.shape[0]
    return data.X.T @ data.X / n, data.X.T @ data.Y / n


def commutator_norm(data: Data) -> float:
    sx, sxy = sigmas(data)
    gram = sxy @ sxy.T
    return float(np.linalg.norm(sx @ gram - gram @ sx))


# ---------------------------------------------------------------- file writers


def write_idx(
    path: Path,
    array: np.ndarray,
    *,
    magic: int | None = None,
    gz: bool = False,
    cut: int = 0,
    pad: int = 0,
) -> Path:
    """An IDX unsigned-byte file (magic 0x0800 | ndim unless given), cut short or padded."""
    header = (0x800 | array.ndim if magic is None else magic).to_bytes(4, "big")
    header += b"".join(int(k).to_bytes(4, "big") for k in array.shape)
    content = header + array.astype(np.uint8).tobytes()
    content = content[: len(content) - cut] + bytes(pad)
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def write_cifar(path: Path, labels: np.ndarray, pixels: np.ndarray) -> Path:
    np.column_stack([labels, pixels]).astype(np.uint8).tofile(path)
    return path


def images(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, d), dtype=np.uint8)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mnist() -> Data:
    return load_dataset("mnist_sample", **RAW)


@pytest.fixture(scope="module")
def digits() -> Data:
    return load_dataset("digits", **RAW)


@pytest.fixture(params=["mnist", "digits"])
def bundled(request) -> tuple[str, Data, tuple[int, int]]:
    shape = {"mnist": (5000, 784), "digits": (1797, 64)}[request.param]
    name = {"mnist": "mnist_sample", "digits": "digits"}[request.param]
    return name, request.getfixturevalue(request.param), shape


@pytest.fixture
def mnist_files(tmp_path: Path) -> dict[str, object]:
    rng = np.random.default_rng(1)
    pics = images(rng, 12, 20).reshape(12, 4, 5)
    labels = rng.integers(0, 10, size=12)
    write_idx(tmp_path / "t-images-idx3-ubyte", pics)
    write_idx(tmp_path / "t-labels-idx1-ubyte", labels)
    write_idx(tmp_path / "z-images-idx3-ubyte.gz", pics, gz=True)
    write_idx(tmp_path / "z-labels-idx1-ubyte.gz", labels, gz=True)
    return {"dir": tmp_path, "images": pics, "labels": labels}


# ---------------------------------------------------------------- commuting

COMMUTING_CASES = {
    "default": {},
    "d<p": {"d": 4, "p": 7, "n": 30},
    "d>p": {"d": 9, "p": 2, "n": 40, "noise": 0.5},
    "perturbed": {"perturbation": 0.2},
    "custom": {"d": 3, "p": 3, "n": 10, "s": [2.0, 1.0, 0.5], "lam": [1.0, 3.0, 0.5]},
    "centred": {"center": True, "perturbation": 0.1},
}


@pytest.fixture(params=list(COMMUTING_CASES), ids=list(COMMUTING_CASES))
def commuting(request) -> tuple[dict, Data]:
    options = COMMUTING_CASES[request.param]
    return options, load_dataset("commuting", **options)


def test_commuting_is_exact(commuting):
    options, data = commuting
    truth = data.meta["truth"]
    U, V = np.array(truth["U"]), np.array(truth["V"])
    s, lam = np.array(truth["s"]), np.array(truth["lam"])
    m = s.size
    sx, sxy = sigmas(data)
    np.testing.assert_allclose(sxy, U[:, :m] * s @ V[:, :m].T, atol=1e-10)
    M = U.T @ sx @ U  # = Λ + B
    np.testing.assert_allclose(np.diag(M), lam, atol=1e-10)
    off = M - np.diag(np.diag(M))
    np.testing.assert_allclose(
        np.linalg.norm(off), options.get("perturbation", 0.0) * np.linalg.norm(lam), atol=1e-10
    )
    np.testing.assert_allclose(off[m:, m:], 0.0, atol=1e-10)  # signal-free block untouched
    assert np.linalg.eigvalsh(M)[0] > 0
    assert truth["eps_A1"] == pytest.approx(np.linalg.norm(off) / np.linalg.norm(M), abs=1e-12)


def test_commuting_commutes_only_without_perturbation(commuting):
    options, data = commuting
    if options.get("perturbation", 0.0) == 0.0:
        assert commutator_norm(data) < 1e-12
    else:
        assert commutator_norm(data) > 1e-3


def test_commuting_defaults_are_unit_and_well_separated():
    data = load_dataset("commuting")
    sx, sxy = sigmas(data)
    assert np.linalg.eigvalsh(sx)[-1] == pytest.approx(1.0, abs=1e-12)
    s = np.linalg.svd(sxy, compute_uv=False)
    assert s[0] == pytest.approx(1.0, abs=1e-12)
    assert np.all(s[1:] / s[:-1] < 0.71)
    rho = np.array(data.meta["s"]) / np.array(data.meta["lam"][: s.size])
    assert np.all(np.diff(rho) < -0.02) and rho.min() >= 0.5 and rho.max() == 1.0
    assert data.meta["scale"] == "none" and data.meta["x_scale"] == 1.0


def test_commuting_centring_keeps_the_statistics():
    plain, centred = (load_dataset("commuting", center=c) for c in (False, True))
    for a, b in zip(sigmas(plain), sigmas(centred), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(centred.Y.mean(axis=0), 0.0, atol=1e-12)


def test_commuting_noise_is_outside_the_column_space():
    quiet, noisy = (load_dataset("commuting", noise=v) for v in (0.0, 1.0))
    np.testing.assert_array_equal(quiet.X, noisy.X)
    np.testing.assert_allclose(sigmas(quiet)[1], sigmas(noisy)[1], atol=1e-12)
    assert np.linalg.norm(noisy.Y - quiet.Y) > 1.0


@settings(max_examples=30, deadline=None)
@given(
    d=st.integers(1, 10),
    p=st.integers(1, 10),
    extra=st.integers(0, 30),
    seed=st.integers(0, 2**31),
    perturbation=st.floats(0.0, 0.1),
)
def test_commuting_unit_scale(d, p, extra, seed, perturbation):
    if d == 1:
        perturbation = 0.0
    data = load_dataset(
        "commuting",
        d=d,
        p=p,
        n=d + 1 + extra,
        seed=seed,
        perturbation=perturbation,
        scale="unit",
    )
    sx, sxy = sigmas(data)
    assert np.linalg.eigvalsh(sx)[-1] == pytest.approx(1.0, abs=1e-10)
    assert np.linalg.norm(sxy, 2) == pytest.approx(1.0, abs=1e-10)
    truth = data.meta["truth"]
    U, V, s = np.array(truth["U"]), np.array(truth["V"]), np.array(truth["s"])
    m = s.size
    factor = data.meta["x_scale"] * data.meta["y_scale"]
    np.testing.assert_allclose(sxy, factor * U[:, :m] * s @ V[:, :m].T, atol=1e-10)


# ---------------------------------------------------------------- autoencoder


@pytest.mark.parametrize("rank", [1, 3, 5])
@pytest.mark.parametrize("center", [False, True])
def test_autoencoder(rank, center):
    data = load_dataset("autoencoder", rank=rank, center=center, n=200, d=12)
    assert data.Y is data.X
    assert data.X_clean.shape == (200, 12)
    assert np.linalg.matrix_rank(data.X_clean) == rank
    assert data.meta["target"] == "input"
    assert data.meta["y_scale"] == data.meta["x_scale"]
    assert len(data.meta["spectrum"]) == rank
    assert np.linalg.eigvalsh(sigmas(data)[0])[-1] == pytest.approx(1.0)
    if center:
        np.testing.assert_allclose(data.X_clean.mean(axis=0), 0.0, atol=1e-12)


def test_autoencoder_clean_signal_gets_the_input_scale():
    raw, unit = (load_dataset("autoencoder", scale=v) for v in ("none", "unit"))
    factor = unit.meta["x_scale"]
    assert factor != 1.0
    np.testing.assert_allclose(unit.X, raw.X * factor, rtol=1e-13)
    np.testing.assert_allclose(unit.X_clean, raw.X_clean * factor, rtol=1e-13)
    residual = raw.X - raw.X_clean
    assert np.std(residual) == pytest.approx(0.3, rel=0.05)


# ---------------------------------------------------------------- bundled image sets


def test_bundled_shapes_and_onehot(bundled):
    _, data, shape = bundled
    assert data.X.shape == shape and data.Y.shape == (shape[0], 10)
    assert data.X.dtype == np.float64 and data.Y.dtype == np.float64
    np.testing.assert_array_equal(data.Y.sum(axis=1), 1.0)
    assert data.X.min() == 0.0 and data.X.max() == 1.0
    assert data.meta["target"] == "onehot" and data.X_clean is None


def test_mnist_sample_layout(mnist):
    counts = mnist.Y.sum(axis=0)
    np.testing.assert_array_equal(counts, 500)  # labels were the last column
    assert mnist.meta["source"].endswith("mnist_5k.csv.gz")


def test_bundled_subsampling(bundled):
    name, full, _ = bundled
    a, b = (load_dataset(name, n=50, seed=7, **RAW) for _ in range(2))
    c = load_dataset(name, n=50, seed=8, **RAW)
    np.testing.assert_array_equal(a.X, b.X)
    assert a.meta["data_hash"] == b.meta["data_hash"] != c.meta["data_hash"]
    assert not np.array_equal(a.X, c.X)
    full_rows = {row.tobytes() for row in full.X}
    assert all(row.tobytes() in full_rows for row in a.X)
    assert a.meta["n"] == 50


def test_digits_as_autoencoder(digits):
    data = load_dataset("digits", target="input", center=True, test_fraction=0)
    assert data.Y is data.X and data.meta["target"] == "input"
    np.testing.assert_allclose(data.X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(data.X / data.meta["x_scale"], digits.X - digits.X.mean(axis=0))
    held = load_dataset("digits", target="input", center=True)
    assert held.Y_test is held.X_test and held.X_test.shape == (359, 64)


@pytest.mark.parametrize("center", [False, True])
def test_unit_scale_on_real_data(center):
    data = load_dataset("digits", center=center)
    sx, sxy = sigmas(data)
    assert np.linalg.eigvalsh(sx)[-1] == pytest.approx(1.0, abs=1e-10)
    assert np.linalg.norm(sxy, 2) == pytest.approx(1.0, abs=1e-10)


# ---------------------------------------------------------------- file loaders: round trips


@pytest.mark.parametrize("stem", ["t", "z"], ids=["plain", "gzip"])
def test_mnist_idx_round_trip(mnist_files, stem):
    folder = mnist_files["dir"]
    suffix = ".gz" if stem == "z" else ""
    data = load_dataset("mnist_idx", path=folder / f"{stem}-images-idx3-ubyte{suffix}", **RAW)
    np.testing.assert_array_equal(data.X, mnist_files["images"].reshape(12, 20) / 255)
    np.testing.assert_array_equal(data.Y.argmax(axis=1), mnist_files["labels"])
    assert data.meta["labels"] == str(folder / f"{stem}-labels-idx1-ubyte{suffix}")
    assert len(data.meta["source"]) == 2


def test_mnist_idx_input_target_needs_no_labels(tmp_path):
    pics = images(np.random.default_rng(0), 5, 6).reshape(5, 2, 3)
    path = write_idx(tmp_path / "pictures.idx", pics)
    data = load_dataset("mnist_idx", path=str(path), target="input", **RAW)
    assert data.Y is data.X and data.X.shape == (5, 6)
    with pytest.raises(DatasetError, match="'labels'"):
        load_dataset("mnist_idx", path=str(path))


def test_cifar10_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, size=(3, 4))
    pixels = [images(rng, 4, 3072) for _ in range(3)]
    for k, name in enumerate(["data_batch_2.bin", "data_batch_10.bin", "test_batch.bin"]):
        write_cifar(tmp_path / name, labels[k], pixels[k])
    (tmp_path / "batches.meta.txt").write_text("airplane\n")
    data = load_dataset("cifar10", path=tmp_path, **RAW)  # natural order, test batch skipped
    np.testing.assert_array_equal(data.X, np.concatenate(pixels[:2]) / 255)
    np.testing.assert_array_equal(data.Y.argmax(axis=1), labels[:2].ravel())
    assert [Path(f).name for f in data.meta["source"]] == ["data_batch_2.bin", "data_batch_10.bin"]
    listed = load_dataset(
        "cifar10", path=f"{tmp_path / 'test_batch.bin'},{tmp_path / 'data_batch_2.bin'}", **RAW
    )
    np.testing.assert_array_equal(listed.X[:4], pixels[2] / 255)
    assert listed.meta["path"] == [
        str(tmp_path / n) for n in ("test_batch.bin", "data_batch_2.bin")
    ]


def test_imagenet32_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    labels = [rng.integers(1, 13, size=20) for _ in range(2)]
    data = [images(rng, 20, 3072) for _ in range(2)]
    for k in range(2):
        np.savez(
            tmp_path / f"train_data_batch_{k + 1}.npz",
            data=data[k],
            labels=labels[k],
            mean=np.zeros(3072),
        )
    np.savez(tmp_path / "val_data.npz", data=data[0][:1], labels=labels[0][:1])
    loaded = load_dataset("imagenet32", path=tmp_path, classes=3, **RAW)
    all_labels, all_data = np.concatenate(labels), np.concatenate(data)
    keep = all_labels <= 3
    np.testing.assert_array_equal(loaded.X, all_data[keep] / 255)
    np.testing.assert_array_equal(loaded.Y.argmax(axis=1), all_labels[keep] - 1)
    assert loaded.Y.shape[1] == 3 and loaded.meta["classes"] == 3
    everything = load_dataset("imagenet32", path=tmp_path, classes="none", **RAW)
    assert everything.Y.shape == (40, 1000) and everything.meta["classes"] == 1000


@pytest.mark.parametrize("kind", ["regression", "labels"])
def test_npz_round_trip(tmp_path, kind):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((15, 4))
    Y = rng.standard_normal((15, 2)) if kind == "regression" else rng.choice([3, 7, 9], size=15)
    np.savez(tmp_path / "plain.npz", X=X, Y=Y)
    data = load_dataset("npz", path=tmp_path / "plain.npz", **RAW)
    np.testing.assert_array_equal(data.X, X)
    if kind == "regression":
        np.testing.assert_array_equal(data.Y, Y)
        assert data.meta["target"] == "regression"
    else:
        np.testing.assert_array_equal(np.array([3, 7, 9])[data.Y.argmax(axis=1)], Y)
        assert data.meta["class_values"] == [3, 7, 9] and data.meta["target"] == "onehot"


# ---------------------------------------------------------------- file loaders: broken files

Case = Callable[[Path], tuple[str, dict, Path]]


def _idx_images(tmp: Path, **kw) -> tuple[str, dict, Path]:
    pics = images(np.random.default_rng(5), 6, 12).reshape(6, 3, 4)
    path = write_idx(tmp / "bad-images-idx3-ubyte", pics, **kw)
    write_idx(tmp / "bad-labels-idx1-ubyte", np.arange(6))
    return "mnist_idx", {"path": path}, path


def _idx_labels(tmp: Path, labels: np.ndarray, **kw) -> tuple[str, dict, Path]:
    pics = images(np.random.default_rng(5), 6, 12).reshape(6, 3, 4)
    write_idx(tmp / "bad-images-idx3-ubyte", pics)
    path = write_idx(tmp / "bad-labels-idx1-ubyte", labels, **kw)
    return "mnist_idx", {"path": tmp / "bad-images-idx3-ubyte"}, path


def _truncated_gzip(tmp: Path) -> tuple[str, dict, Path]:
    name, options, path = _idx_images(tmp, gz=True)
    path.write_bytes(path.read_bytes()[:-12])
    return name, options, path


def _cifar(tmp: Path, content: bytes) -> tuple[str, dict, Path]:
    path = tmp / "data_batch_1.bin"
    path.write_bytes(content)
    return "cifar10", {"path": path}, path


def _npz(tmp: Path, loader: str = "npz", **arrays) -> tuple[str, dict, Path]:
    path = tmp / "broken.npz"
    np.savez(path, **arrays)
    return loader, {"path": path}, path


def _not_zip(tmp: Path) -> tuple[str, dict, Path]:
    path = tmp / "fake.npz"
    path.write_bytes(b"not a zip archive")
    return "npz", {"path": path}, path


_X = np.ones((5, 3))
_PIX = np.zeros((4, 3072), dtype=np.uint8)

BROKEN: dict[str, Case] = {
    "idx wrong magic": lambda t: _idx_images(t, magic=0x00000801),
    "idx labels wrong magic": lambda t: _idx_labels(t, np.arange(6), magic=0x00000803),
    "idx truncated": lambda t: _idx_images(t, cut=5),
    "idx truncated header": lambda t: _idx_images(t, cut=75),
    "idx gzip truncated": _truncated_gzip,
    "idx too long": lambda t: _idx_images(t, pad=3),
    "idx label count": lambda t: _idx_labels(t, np.arange(5)),
    "idx label value": lambda t: _idx_labels(t, np.arange(6) + 5),
    "cifar short batch": lambda t: _cifar(t, bytes(3073 * 2 - 100)),
    "cifar empty": lambda t: _cifar(t, b""),
    "cifar pickle": lambda t: _cifar(t, b"\x80\x02}q\x00" + bytes(3073 * 2)),
    "cifar label": lambda t: _cifar(t, bytes([12]) + bytes(3072)),
    "imagenet object array": lambda t: _npz(
        t, "imagenet32", data=np.array([None] * 4, dtype=object), labels=np.arange(1, 5)
    ),
    "imagenet shape": lambda t: _npz(t, "imagenet32", data=_PIX[:, :100], labels=np.ones(4, int)),
    "imagenet labels": lambda t: _npz(t, "imagenet32", data=_PIX, labels=np.arange(4)),
    "imagenet missing": lambda t: _npz(t, "imagenet32", data=_PIX),
    "npz missing Y": lambda t: _npz(t, X=_X),
    "npz X 1-d": lambda t: _npz(t, X=np.ones(5), Y=_X),
    "npz Y float 1-d": lambda t: _npz(t, X=_X, Y=np.ones(5)),
    "npz rows": lambda t: _npz(t, X=_X, Y=np.ones((4, 2))),
    "npz NaN": lambda t: _npz(t, X=np.where(np.eye(5, 3) > 0, np.nan, 1.0), Y=_X),
    "npz inf": lambda t: _npz(t, X=_X, Y=np.full((5, 1), np.inf)),
    "npz object": lambda t: _npz(t, X=np.array([[{}]] * 5, dtype=object), Y=_X),
    "npz not a zip": _not_zip,
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_files_name_the_file(tmp_path, case):
    loader, options, path = BROKEN[case](tmp_path)
    with pytest.raises(DatasetError, match=re.escape(path.name)):
        load_dataset(loader, **options)


@pytest.mark.parametrize(
    ("loader", "option"),
    [
        ("mnist_idx", "path"),
        ("mnist_idx", "labels"),
        ("cifar10", "path"),
        ("imagenet32", "path"),
        ("npz", "path"),
    ],
)
def test_missing_paths_name_option_and_path(tmp_path, mnist_files, loader, option):
    options = {"path": str(tmp_path / "nowhere.bin"), "labels": str(tmp_path / "nowhere.bin")}
    if option == "labels":
        options["path"] = str(mnist_files["dir"] / "t-images-idx3-ubyte")
    else:
        options.pop("labels")
    with pytest.raises(DatasetError, match=rf"'{option}'.*nowhere\.bin"):
        load_dataset(loader, **options)


def test_directory_without_batches(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(b"\x80\x02")
    with pytest.raises(DatasetError, match="python version"):
        load_dataset("cifar10", path=tmp_path)
    write_cifar(tmp_path / "test_batch.bin", np.zeros(1), np.zeros((1, 3072)))
    with pytest.raises(DatasetError, match=r"other than test_batch\.bin"):
        load_dataset("cifar10", path=tmp_path)


@pytest.mark.parametrize(
    ("X", "Y", "center", "cause"),
    [
        (np.zeros((6, 3)), np.ones((6, 2)), False, "Σx = XᵀX/n is zero (every input column"),
        (
            np.ones((6, 3)),
            np.ones((6, 2)),
            True,
            "Σx = XᵀX/n is zero (every input column is constant, and center=True removed it)",
        ),
        (np.ones((1, 3)), np.ones((1, 2)), True, "single row, which center=True turns into zeros"),
        (
            np.eye(6, 3),
            np.ones((6, 2)),
            True,
            "Σxy = XᵀY/n is zero (every target column is constant, and center=True removed it)",
        ),
        (np.eye(6, 3), np.zeros((6, 2)), False, "Σxy = XᵀY/n is zero (every target column is"),
        (
            np.eye(6, 3),
            np.vstack([np.zeros((3, 2)), np.ones((3, 2))]),
            False,
            "Σxy = XᵀY/n is zero (the targets are orthogonal to the inputs)",
        ),
    ],
    ids=[
        "zero X",
        "constant X centred",
        "one row centred",
        "constant Y centred",
        "zero Y",
        "orthogonal Y",
    ],
)
def test_unit_scale_refuses_zero_statistics(tmp_path, X, Y, center, cause):
    np.savez(tmp_path / "flat.npz", X=X, Y=Y)
    with pytest.raises(DatasetError, match=re.escape("flat.npz: scale='unit': ")) as err:
        load_dataset("npz", path=tmp_path / "flat.npz", center=center)
    assert cause in str(err.value)
    assert center or "center" not in str(err.value)  # centring off: never blamed
    load_dataset("npz", path=tmp_path / "flat.npz", center=center, scale="none")


def test_too_few_rows_names_the_file(tmp_path):
    np.savez(tmp_path / "few.npz", X=np.ones((6, 3)), Y=np.ones((6, 2)))
    with pytest.raises(DatasetError, match=r"few\.npz: option 'n' = 10 exceeds the 6 rows"):
        load_dataset("npz", path=tmp_path / "few.npz", n=10)


# ---------------------------------------------------------------- data at the edge of float64


def _write(path: Path, X: np.ndarray, Y: np.ndarray) -> Path:
    np.savez(path, X=X, Y=Y)
    return path


def _stats(path: Path, **options) -> tuple[Data, Stats]:
    data = load_dataset("npz", path=path, **options)
    return data, dataset_stats(data.X, data.Y, data.X_clean, data.meta)


def _assert_same_stats(a: Stats, b: Stats, rtol: float = 1e-10) -> None:
    """Equal statistics: matrices normwise, per-component quantities entrywise."""
    for name in ("sigma_x", "sigma_xy", "rrr_coef", "rrr_gain", "mu"):
        x, y = getattr(a, name), getattr(b, name)
        assert np.linalg.norm(x - y) <= rtol * np.linalg.norm(y), name
    assert a.rank == b.rank
    for name in ("s", "lam", "rho"):
        x, y = getattr(a, name)[: a.rank], getattr(b, name)[: b.rank]
        np.testing.assert_allclose(x, y, rtol=rtol, err_msg=name)
    assert a.yy == pytest.approx(b.yy, rel=rtol)
    assert a.eps_a1 == pytest.approx(b.eps_a1, rel=1e-8, abs=1e-12)
    assert a.eps_iso == pytest.approx(b.eps_iso, rel=1e-8, abs=1e-12)


@pytest.fixture(scope="module")
def moderate(tmp_path_factory) -> tuple[np.ndarray, np.ndarray, Path]:
    """200 rows: enough for ‖Y‖ (not just its entries) to overflow at 1e153."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((200, 4)) * [2.0, 1.0, 0.5, 0.2] + 0.3
    Y = X @ rng.standard_normal((4, 3)) + 0.5 * rng.standard_normal((200, 3))
    return X, Y, _write(tmp_path_factory.mktemp("moderate") / "moderate.npz", X, Y)


@pytest.mark.parametrize("center", [False, True], ids=["raw", "centred"])
@pytest.mark.parametrize("factor", [1e-300, 1e-170, 1e-160, 1e150, 1e153, 1e300])
@pytest.mark.parametrize("array", ["X", "Y"])
def test_unit_scale_is_exact_at_the_edge_of_float64(tmp_path, moderate, array, factor, center):
    """Before: λ, ρ off by 1e-4 (X·1e-160), "every input column is zero" (X·1e-170),
    "Σxy is zero" (Y·1e153), or overflow (1e300)."""
    X, Y, base_file = moderate
    scaled = {"X": X, "Y": Y, array: {"X": X, "Y": Y}[array] * factor}
    base, base_stats = _stats(base_file, center=center)
    data, stats = _stats(_write(tmp_path / "edge.npz", **scaled), center=center)
    np.testing.assert_allclose(data.X, base.X, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(data.Y, base.Y, rtol=1e-10, atol=1e-12)
    _assert_same_stats(stats, base_stats)
    recorded = data.meta[f"{array.lower()}_scale"]
    assert recorded * factor == pytest.approx(base.meta[f"{array.lower()}_scale"], rel=1e-10)


def test_one_huge_entry_is_scaled_not_overflowed(tmp_path, moderate):
    """Before: "Σx is zero (..., or constant and removed by center=True)" with centring off;
    with scale='none', numpy's "Eigenvalues did not converge" after overflow warnings."""
    X, Y, _ = moderate
    huge, reference = X.copy(), X / 1e300
    huge[0, 0] = reference[0, 0] = 1e300
    reference[0, 0] = 1.0
    _, stats = _stats(_write(tmp_path / "huge.npz", huge, Y))
    _, expected = _stats(_write(tmp_path / "reference.npz", reference, Y))
    _assert_same_stats(stats, expected)
    with pytest.raises(DatasetError, match=r"huge\.npz: Σx = XᵀX/n would be about 5e\+597, beyond"):
        _stats(tmp_path / "huge.npz", scale="none")


def test_single_row_is_not_blamed_on_centring(tmp_path):
    X, Y = np.array([[1e300, 1.0, 2.0]]), np.array([[1.0, 2.0]])
    _, stats = _stats(_write(tmp_path / "row.npz", X, Y))
    _, expected = _stats(_write(tmp_path / "unit.npz", np.array([[1.0, 0.0, 0.0]]), Y))
    _assert_same_stats(stats, expected)


def _spread(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Σx = I and Σxy = diag(1, 1e-9) (rank 2), all scaled by 1e-150: s_2 ≈ 1e-309."""
    Z, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((n, 2)))
    X = np.sqrt(n) * Z
    return X * 1e-150, X * [1.0, 1e-9] * 1e-150


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("tiny", r"Σx = XᵀX/n would be about \d\.\d+e-3\d\d, below float64's smallest"),
        ("large", r"Σx = XᵀX/n would be about \d\.\d+e\+400, beyond float64's largest"),
        ("spread", r"the singular values s_i of Σxy would be about 1e-309, below"),
    ],
    ids=["tiny", "large", "spread"],
)
def test_scale_none_refuses_unrepresentable_statistics(tmp_path, moderate, case, message):
    """Before: LinAlgError "Eigenvalues did not converge", or silently subnormal statistics."""
    X, Y, _ = moderate
    X, Y = {"tiny": (X * 1e-160, Y), "large": (X * 1e200, Y), "spread": _spread()}[case]
    path = _write(tmp_path / "plain.npz", X, Y)
    with pytest.raises(DatasetError, match=rf"^loader 'npz': .*plain\.npz: {message}.*'unit'"):
        _stats(path, scale="none")
    _stats(path)  # rescaled exactly instead


def test_scale_none_refuses_centring_beyond_float64(tmp_path):
    X = np.column_stack([np.full(200, -1.5e308), np.arange(200.0)])
    X[0, 0] = 1.5e308  # the mean is about -1.485e308: centred, this entry is 2.985e308
    Y = np.zeros((200, 1))
    Y[0] = 1.0
    path = _write(tmp_path / "wide.npz", X, Y)
    with pytest.raises(
        DatasetError, match=r"wide\.npz: input array X after centring would be about 2\.98e\+308"
    ):
        load_dataset("npz", path=path, center=True, scale="none")
    data = load_dataset("npz", path=path, center=True)
    assert np.linalg.eigvalsh(sigmas(data)[0])[-1] == pytest.approx(1.0)
    # Centred column 0: 3e308·(e_0 − 1/200), so λ_max(Σx) = 9e616·(1 − 1/200)/200.
    expected = np.sqrt(200 / (1 - 1 / 200)) / 3 / 1e308
    assert data.meta["x_scale"] == pytest.approx(expected, rel=1e-9, abs=0)
    # With 3 rows the factor 1/sqrt(λ_max(Σx)) itself would be subnormal: refused too.
    path = _write(tmp_path / "short.npz", X[:3], Y[:3])
    with pytest.raises(DatasetError, match=r"short\.npz: the factor applied to X .*e-309, below"):
        load_dataset("npz", path=path, center=True)


@pytest.mark.parametrize(
    ("array", "entries", "message"),
    [
        ("X", {(3, 1): np.nan}, r"array 'X' has 1 non-finite entry \(1 NaN, 0 infinite"),
        (
            "Y",
            {(4, 1): np.inf, (2, 0): -np.inf, (7, 1): np.nan},
            r"array 'Y' has 3 non-finite entries \(1 NaN, 2 infinite",
        ),
    ],
    ids=["NaN in X", "3 in Y"],
)
@pytest.mark.parametrize("n", [None, 5])
def test_non_finite_entries_are_counted_and_located(tmp_path, array, entries, message, n):
    arrays = {"X": np.ones((10, 3)), "Y": np.ones((10, 2))}
    for index, value in entries.items():
        arrays[array][index] = value
    first = min(entries)
    np.savez(tmp_path / "holes.npz", **arrays)
    # Every row is checked, even with a subsample that might miss the bad ones.
    with pytest.raises(
        DatasetError, match=rf"holes\.npz: {message}.*first at row {first[0]}, column {first[1]}"
    ):
        load_dataset("npz", path=tmp_path / "holes.npz", n=n)


@pytest.mark.parametrize("scale", ["unit", "none"])
def test_subnormal_data_are_refused(tmp_path, scale):
    """Before: "every input column is zero" (unit) or silently imprecise data (none)."""
    rng = np.random.default_rng(2)
    path = _write(tmp_path / "faint.npz", rng.standard_normal((8, 3)) * 1e-310, np.ones((8, 1)))
    named = r"faint\.npz: input array X: the largest \|entry\| is .*e-310.*subnormal.* bits"
    with pytest.raises(DatasetError, match=named):
        load_dataset("npz", path=path, scale=scale)


def test_a_few_subnormal_entries_are_accepted(tmp_path, moderate):
    """Their absolute error is below the rounding of the largest entry (documented policy)."""
    X, Y, _ = moderate
    faint = X.copy()
    faint[0, 0] = 1e-320
    _, stats = _stats(_write(tmp_path / "faint.npz", faint, Y))
    zero = X.copy()
    zero[0, 0] = 0.0
    _, expected = _stats(_write(tmp_path / "zero.npz", zero, Y))
    _assert_same_stats(stats, expected, rtol=1e-12)


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("name", "options", "named"),
    [
        ("mnist", {}, "'mnist'"),
        ("digits", {"centre": True}, "'centre'"),
        ("digits", {"n": -3}, "'n'"),
        ("digits", {"n": 0}, "'n'"),
        ("digits", {"n": 5000}, r"^loader 'digits': sklearn\.datasets\.load_digits: option 'n' ="),
        ("digits", {"n": 2.5}, "'n'"),
        ("digits", {"scale": "max"}, "'scale'"),
        ("digits", {"center": "maybe"}, "'center'"),
        ("digits", {"target": "labels"}, "'target'"),
        ("npz", {}, "'path'"),
        ("commuting", {"d": 20, "n": 20}, "'n'"),
        ("commuting", {"s": [1, 0.5]}, "'s'"),
        ("commuting", {"s": "0.5,1", "p": 2, "d": 2}, "'s'"),
        ("commuting", {"lam": [1.0] * 19 + [0.0]}, "'lam'"),
        ("commuting", {"perturbation": 0.9}, "'perturbation'"),
        ("commuting", {"perturbation": 0.1, "d": 1}, "'perturbation'"),
        ("commuting", {"noise": "nan"}, "'noise'"),
        ("autoencoder", {"rank": 30}, "'rank'"),
        ("autoencoder", {"spectrum": [1, -1, 1, 1, 1]}, "'spectrum'"),
        ("imagenet32", {"path": ".", "classes": 1001}, "'classes'"),
    ],
)
def test_bad_arguments_are_named(name, options, named):
    with pytest.raises(DatasetError, match=named):
        load_dataset(name, **options)


def test_unknown_names_list_what_is_allowed():
    with pytest.raises(DatasetError, match="allowed: commuting, autoencoder, digits"):
        loader_options("nope")
    with pytest.raises(DatasetError, match="allowed: target, n, seed, center, scale"):
        load_dataset("digits", colour=True)


def test_loader_options_lists_defaults():
    assert set(LOADERS) == {
        "commuting",
        "autoencoder",
        "digits",
        "mnist_sample",
        "mnist_idx",
        "cifar10",
        "imagenet32",
        "npz",
    }
    for name in LOADERS:
        assert {"n", "seed", "center", "scale"} <= set(loader_options(name))
        assert loader_options(name)["center"] is False
    assert loader_options("commuting")["d"] == 20
    assert loader_options("autoencoder")["sigma"] == 0.3
    assert loader_options("imagenet32")["classes"] == 10


def test_parse_options_converts_strings():
    parsed = parse_options(
        "commuting", ["d=6", "p = 3", "center=TRUE", "s=[1, 0.5, 0.25]", "noise=1e-2"]
    )
    assert parsed == {"d": 6, "p": 3, "center": True, "s": [1.0, 0.5, 0.25], "noise": 0.01}
    assert parse_options("digits", ["n=none", "scale=unit"]) == {"n": None, "scale": "unit"}
    data = load_dataset("commuting", **parsed, n="50")
    assert data.X.shape == (50, 6) and data.meta["s"] == [1.0, 0.5, 0.25]


@pytest.mark.parametrize(
    ("items", "named"),
    [(["d"], "'d'"), (["d=1", "d=2"], "'d'"), (["q=1"], "'q'"), (["d=x"], "'d'")],
)
def test_parse_options_rejects(items, named):
    with pytest.raises(DatasetError, match=named):
        parse_options("commuting", items)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=6),
    n=st.integers(1, 10**9),
    flag=st.booleans(),
)
def test_parse_options_round_trip(values, n, flag):
    items = ["s=" + ",".join(map(repr, values)), f"n={n}", f"center={str(flag).lower()}"]
    assert parse_options("commuting", items) == {"s": values, "n": n, "center": flag}


# ---------------------------------------------------------------- metadata and hash

HASH_CHANGES = {
    "seed": {"seed": 1},
    "noise": {"noise": 0.2},
    "center": {"center": True},
    "scale": {"scale": "unit", "perturbation": 0.1},
    "n": {"n": 501},
}


@pytest.mark.parametrize("change", list(HASH_CHANGES), ids=list(HASH_CHANGES))
def test_data_hash(change):
    base = load_dataset("commuting", perturbation=0.1 if change == "scale" else 0.0)
    again = load_dataset("commuting", perturbation=0.1 if change == "scale" else 0.0)
    other = load_dataset("commuting", **HASH_CHANGES[change])
    assert base.meta["data_hash"] == again.meta["data_hash"]
    assert base.meta["data_hash"] != other.meta["data_hash"]
    assert len(base.meta["data_hash"]) == 16


REQUIRED_META = {
    "name",
    "loader",
    "n",
    "d",
    "p",
    "center",
    "scale",
    "x_scale",
    "y_scale",
    "target",
    "source",
    "data_hash",
    "seed",
}


@pytest.mark.parametrize("name", ["commuting", "autoencoder", "digits"])
def test_meta_is_complete_and_json(name):
    data = load_dataset(name)
    meta = json.loads(json.dumps(data.meta))
    assert REQUIRED_META <= set(meta)
    assert set(loader_options(name)) <= set(meta)
    assert all(meta[k] is not None for k in ("n", "s", "lam", "spectrum") if k in meta)
    assert (meta["n"], meta["d"], meta["p"]) == (*data.X.shape, data.Y.shape[1])
    assert meta["name"] == meta["loader"] == name


def test_arrays_are_read_only():
    data = load_dataset("autoencoder", n=20)
    for array in (data.X, data.Y, data.X_clean):
        with pytest.raises(ValueError, match="read-only"):
            array[0, 0] = 1.0


def test_import_is_light():
    code = (
        "import sys, lindyn.datasets; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sklearn', 'scipy', 'pandas', 'mlxtend', 'xarray', 'zarr'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
