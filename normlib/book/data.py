"""The book's real datasets, both shipped with the installation (no download ever happens).

- :func:`digits`: scikit-learn's handwritten digits, 1,797 grey-scale images of 8×8 pixels
  (values 0–16), ten classes; ``sklearn.datasets.load_digits`` reads a file installed with
  scikit-learn.
- :func:`pydoc_text`: Python's own documentation, the module ``pydoc_data.topics`` of the standard
  library (79 topics, about 465,000 characters of English prose about Python), for the
  character-level language models of the transformer chapters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Split", "digits", "CharCorpus", "pydoc_text", "ngram_entropy"]


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


@dataclass(frozen=True)
class CharCorpus:
    """A character-level corpus split into train and validation, with its vocabulary.

    ``train`` and ``val`` are 1-D ``int64`` tensors of character ids; ``vocab`` is the sorted
    string of every distinct character; ``val_topics`` names the held-out topics.
    """

    train: Tensor
    val: Tensor
    vocab: str
    val_topics: tuple[str, ...]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> Tensor:
        index = {c: i for i, c in enumerate(self.vocab)}
        return torch.tensor([index[c] for c in text], dtype=torch.int64)

    def decode(self, ids: Tensor) -> str:
        return "".join(self.vocab[i] for i in ids.tolist())

    def batch(self, split: str, batch_size: int, context: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``batch_size`` windows of ``context`` characters drawn at seeded random offsets.

        Returns ``(x, y)``, both ``(batch_size, context)``; ``y`` is ``x`` shifted by one
        character, the next character to predict at every position. ``split`` is ``"train"``
        or ``"val"``; the same generator state gives the same batch on every machine.
        """
        ids = {"train": self.train, "val": self.val}[split]
        starts = torch.randint(len(ids) - context, (batch_size,), generator=generator)
        offsets = torch.arange(context)
        x = ids[starts[:, None] + offsets]  # (B, T)
        y = ids[starts[:, None] + offsets + 1]  # (B, T)
        return x, y


def pydoc_text(val_every: int = 5, val_offset: int | None = None) -> CharCorpus:
    """Python's documentation topics as a character-level corpus, split by topic.

    The split is by *topic*, never inside one: the 79 topics of ``pydoc_data.topics`` are sorted by
    name, and every ``val_every``-th of them (positions ``val_offset``, ``val_offset + val_every``, …
    of the sorted list; ``val_offset`` defaults to ``val_every - 1``) is held out for validation, so the validation text is whole documentation
    pages the model never saw, not windows next to its training text. Each part is its topics'
    texts in sorted order, joined by a blank line. The vocabulary is every character of the whole
    text (train and validation), sorted, so that no validation character is unknown.

    Args:
        val_every: hold out one topic in ``val_every``. Default ``5``: 15 topics, about 31,000
            characters (7 % of the text); the other 64 topics, about 434,000, are for training.
        val_offset: the first held-out position, ``0 <= val_offset < val_every``. The default
            (``val_every - 1``) holds out short topics whose text is easier than the training
            text (bigram entropy 2.16 against 2.47 nats, 21 % spaces against 18 %);
            ``val_offset=1`` holds out 16 topics, about 127,000 characters, whose bigram entropy
            and share of spaces match the training text's (2.46 against 2.44 nats, 19 % and 18 %).

    >>> corpus = pydoc_text()
    >>> corpus.vocab_size, len(corpus.val_topics), corpus.val_topics[:2]
    (103, 15, ('atom-literals', 'binary'))
    >>> corpus.decode(corpus.encode("def f(x):"))
    'def f(x):'
    """
    from pydoc_data.topics import topics

    names = sorted(topics)
    offset = val_every - 1 if val_offset is None else val_offset
    if not 0 <= offset < val_every:
        raise ValueError(f"val_offset must be in [0, {val_every}), got {val_offset}")
    val_names = tuple(n for i, n in enumerate(names) if i % val_every == offset)
    train_names = [n for n in names if n not in val_names]
    vocab = "".join(sorted(set("".join(topics.values()))))
    index = {c: i for i, c in enumerate(vocab)}

    def ids(parts: list[str] | tuple[str, ...]) -> Tensor:
        text = "\n\n".join(topics[n] for n in parts)
        return torch.tensor([index[c] for c in text], dtype=torch.int64)

    return CharCorpus(ids(train_names), ids(val_names), vocab, val_names)


def ngram_entropy(ids: Tensor, order: int, vocab_size: int, fit: Tensor | None = None) -> float:
    """Nats per character of a frequency table of ``order`` 1 (unigram) or 2 (bigram) on ``ids``.

    With ``fit=None`` the table is counted on ``ids`` itself: the empirical entropy
    :math:`H(X_t)` (order 1) or conditional entropy :math:`H(X_t \\mid X_{t-1})` (order 2) of the
    text, what the best such table for *this* text scores. With ``fit`` the table is counted on
    ``fit`` (add-one smoothed, so that no pair unseen in ``fit`` costs an infinite loss) and scored
    on ``ids``: the cross-entropy of a table learnt on one text and used on another, the baseline a
    model trained on ``fit`` has to beat.

    >>> ids = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    >>> round(ngram_entropy(ids, 1, 2), 4), abs(round(ngram_entropy(ids, 2, 2), 4))  # ln 2; next is certain
    (0.6931, 0.0)
    >>> round(ngram_entropy(ids, 2, 2, fit=ids), 4)  # add-one: p(1 | 0) = 5/6, p(0 | 1) = 4/5
    0.1998
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    table = ids if fit is None else fit
    smooth = 0.0 if fit is None else 1.0
    if order == 1:
        counts = torch.bincount(table, minlength=vocab_size).double() + smooth
        p = counts / counts.sum()
        target = ids
        logp = p.log()[target]
    else:
        pairs = torch.bincount(table[:-1] * vocab_size + table[1:], minlength=vocab_size**2)
        counts = pairs.double().reshape(vocab_size, vocab_size) + smooth
        cond = counts / counts.sum(dim=1, keepdim=True)  # p(next | previous); rows never seen stay 0/0
        logp = cond.log()[ids[:-1], ids[1:]]
    return -logp.mean().item()
