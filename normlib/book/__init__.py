"""The book's helpers: not part of the library, and not needed to use it.

- :mod:`normlib.book.notebook`: the setup call every notebook makes, and the verdict line a claim
  cell records;
- :mod:`normlib.book.data`: scikit-learn's digits and Python's documentation text, both shipped
  with the installation (no download);
- :mod:`normlib.book.train`: the small models and the one seeded training loop;
- :mod:`normlib.book.transformer`: a small decoder-only transformer with switches for where the
  norm goes and which norm it is, and its training loop;
- :mod:`normlib.book.invariance`: the layer-normalization paper's invariance table, computed.
- :mod:`normlib.book.resnet`, :mod:`normlib.book.practice`, :mod:`normlib.book.diagnostics`: the
  residual networks, batch-norm practice and signal-propagation plots of the last chapters;
- :mod:`normlib.book.distributed`: a launcher of local processes and a worker that checks
  :class:`normlib.nn.SyncBatchNorm` against PyTorch's batch norm;
- :mod:`normlib.book.perf`: the geometric mean of the speed chapter, shared with
  ``benchmarks/bench.py``.
"""
