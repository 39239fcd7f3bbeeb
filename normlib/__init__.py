"""normlib: normalization layers written to be read, checked against PyTorch.

Read it in this order (each module builds only on the ones before it):

- :mod:`normlib.core`: the framework (which axes each method reduces, the statistics, the
  formula op for op, normalize, affine, the running average, the input checks);
- :mod:`normlib.grad`: the hand-derived backward passes, one for any reduction set and batch
  norm's and weight norm's as its cases;
- :mod:`normlib.fused`: the speed path, the formula in one buffer with the closed-form backward;
- :mod:`normlib.functional`: ``batch_norm``, ``layer_norm``, ``instance_norm``, ``group_norm``,
  ``rms_norm``, ``local_response_norm``, ``weight_norm``, ``cosine_norm`` with
  ``torch.nn.functional``'s signatures;
- :mod:`normlib.distributed`: the collectives of synchronized batch norm (gloo, CPU);
- :mod:`normlib.nn`: modules with ``torch.nn``'s names, arguments and state_dict keys, including
  ``SyncBatchNorm``.

The book's helpers live apart, in :mod:`normlib.book` (not needed to use normlib).
"""
from normlib import core, distributed, functional, fused, grad, nn

__version__ = "0.1.0"
__all__ = ["core", "grad", "fused", "functional", "distributed", "nn", "__version__"]
