"""normlib: normalization layers written to be read, checked against PyTorch.

- :mod:`normlib.core`: the unified framework (statistics over a set of axes, normalize, affine);
- :mod:`normlib.functional`: ``batch_norm``, ``layer_norm``, ``instance_norm``, ``group_norm``, ``rms_norm``,
  ``local_response_norm``, ``weight_norm``, ``cosine_norm`` with ``torch.nn.functional``'s signatures;
- :mod:`normlib.nn`: modules with ``torch.nn``'s names, arguments and state_dict keys;
- :mod:`normlib.grad`: the hand-derived backward passes of batch norm and weight norm;
- :mod:`normlib.distributed`: ``SyncBatchNorm`` over ``torch.distributed`` (gloo, CPU), also
  exported as ``normlib.nn.SyncBatchNorm``.

The book's helpers: :mod:`normlib.book.data` (scikit-learn's digits), :mod:`normlib.book.train` (one seeded
training loop) and :mod:`normlib.book.notebook` (the setup call every notebook makes).
"""
from normlib import core, functional, grad, nn

__version__ = "0.1.0"
__all__ = ["core", "functional", "grad", "nn", "__version__"]
