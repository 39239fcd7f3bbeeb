"""The book's real dataset: scikit-learn's handwritten digits, shipped inside the package.

1,797 grey-scale images of 8×8 pixels (values 0–16), ten classes. No download ever happens:
``sklearn.datasets.load_digits`` reads a file installed with scikit-learn.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Split", "digits"]


class Split(NamedTuple):
    x_train: Tensor  # (n_train, 64) or (n_train, 1, 8, 8), float32 in [0, 1]
    y_train: Tensor  # (n_train,) int64 class labels 0..9
    x_test: Tensor
    y_test: Tensor


def digits(
    images: bool = False,
    test_fraction: float = 0.25,
    seed: int = 0,
    standardize: bool = False,
    dtype: torch.dtype = torch.float64,
) -> Split:
    """The digits, split once into train and test by a seeded permutation.

    The book trains its small models in float64 (:func:`normlib.book.train.fit` moves a model to
    the data's dtype): a difference in the last bits between two CPUs, vector widths or thread
    counts then stays far below every printed digit for the length of the book's runs.

    Args:
        images: return ``(N, 1, 8, 8)`` images instead of ``(N, 64)`` vectors.
        test_fraction: share of the 1,797 samples held out for testing. Default ``0.25``.
        seed: seed of the permutation, so every chapter sees the same split. Default ``0``.
        standardize: subtract the training set's per-pixel mean and divide by its overall
            standard deviation (statistics of the training set only); otherwise pixels are
            scaled to ``[0, 1]``.
        dtype: floating-point type of the inputs. Default ``torch.float64``.

    >>> split = digits()
    >>> split.x_train.shape, split.x_test.shape, split.y_train.unique().numel(), split.x_train.dtype
    (torch.Size([1348, 64]), torch.Size([449, 64]), 10, torch.float64)
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=dtype) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = round(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    x_train, x_test = x[train], x[test]
    if standardize:
        mean, std = x_train.mean(dim=0), x_train.std()
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if images:
        x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    return Split(x_train, y[train], x_test, y[test])
