"""normlib: normalization layers written to be read, checked against PyTorch.

- :mod:`normlib.core`: the unified framework (statistics over a set of axes, normalize, affine);
- :mod:`normlib.functional`: ``batch_norm``, ``layer_norm``, ``instance_norm``, ``group_norm``,
  ``local_response_norm``, ``weight_norm``, ``cosine_norm`` with ``torch.nn.functional``'s signatures;
- :mod:`normlib.nn`: modules with ``torch.nn``'s names, arguments and state_dict keys;
- :mod:`normlib.grad`: the hand-derived backward passes of batch norm and weight norm.
"""
from normlib import core, functional, grad, nn

__version__ = "0.1.0"
__all__ = ["core", "functional", "grad", "nn", "__version__"]
