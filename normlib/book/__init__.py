"""The book's helpers: not part of the library, and not needed to use it.

- :mod:`normlib.book.notebook`: the setup call every notebook makes, and the verdict line a claim
  cell records;
- :mod:`normlib.book.data`: scikit-learn's digits, shipped with the package (no download);
- :mod:`normlib.book.train`: the small models and the one seeded training loop;
- :mod:`normlib.book.distributed`: a launcher of local processes and a worker that checks
  :class:`normlib.nn.SyncBatchNorm` against PyTorch's batch norm.
"""
