"""`Loader`: a registered dataset reader with its options, returning `Data`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lindyn.datasets.data import Data, Raw
from lindyn.datasets.errors import DatasetError
from lindyn.datasets.options import Option, parse_items, resolve
from lindyn.datasets.preprocess import data_hash, prepare

__all__ = ["Loader"]


@dataclass(frozen=True)
class Loader:
    """A dataset loader: ``loader(**options) -> Data``.

    Attributes
    ----------
    name : str
        The registry name.
    read : callable
        ``read(resolved_options) -> Raw``, the dataset-specific part.
    options : mapping of str to Option
        Every option the loader accepts, with its default.
    """

    name: str
    read: Callable[[Mapping[str, Any]], Raw]
    options: Mapping[str, Option]

    def defaults(self) -> dict[str, Any]:
        """The allowed options and their defaults.

        Returns
        -------
        dict
        """
        return {key: option.default for key, option in self.options.items()}

    def parse(self, items: list[str]) -> dict[str, Any]:
        """Parse command-line ``KEY=VALUE`` items into typed options.

        Parameters
        ----------
        items : list of str
            ``"key=value"`` strings.

        Returns
        -------
        dict
        """
        return parse_items(self.name, self.options, items)

    def __call__(self, **options: Any) -> Data:
        """Load and preprocess the dataset.

        Parameters
        ----------
        **options
            Options of this loader, typed or as strings.

        Returns
        -------
        Data
            Read-only arrays and JSON-serialisable metadata.

        Raises
        ------
        DatasetError
            For a bad option or a bad data file.
        """
        opts = resolve(self.name, self.options, options)
        try:
            raw = self.read(opts)
            prepared = prepare(
                raw,
                n=opts["n"],
                seed=opts["seed"],
                center=opts["center"],
                scale=opts["scale"],
                test_fraction=opts["test_fraction"],
                split_seed=opts["split_seed"],
            )
        except DatasetError as err:
            raise DatasetError(f"loader {self.name!r}: {err}") from None
        X, Y, X_test, Y_test = prepared.X, prepared.Y, prepared.X_test, prepared.Y_test
        for array in (X, Y, prepared.X_clean, X_test, Y_test):
            if array is not None:
                array.flags.writeable = False
        meta = {
            "name": self.name,
            "loader": self.name,
            **opts,
            **raw.extra,
            "n": X.shape[0],
            "d": X.shape[1],
            "p": Y.shape[1],
            "x_scale": prepared.x_scale,
            "y_scale": prepared.y_scale,
            "target": raw.target,
            "source": raw.source,
            "data_hash": data_hash(X, Y),
        }
        if X_test is not None:
            meta["n_test"] = X_test.shape[0]
            meta["test_hash"] = data_hash(X_test, Y_test)
            if raw.test is not None:
                meta["test_source"] = raw.test.source
        return Data(X=X, Y=Y, X_clean=prepared.X_clean, meta=meta, X_test=X_test, Y_test=Y_test)
