"""The fused reference kernel: layer norm and RMSNorm over the last dimension, forward and
backward, one loop nest per row, in C++ built with ``torch.utils.cpp_extension.load_inline``.

It is kept beside the benchmark, not in ``normlib``: the library's layers stay tensor operations.
It shows the structure of Triton's and Liger's layer-norm kernels and llm.c's ``layernorm``:

- forward, per row: the mean, then the corrected two-pass variance
  :math:`\\sigma^2 = \\overline{d^2} - c^2` with :math:`d = x - \\bar x` and :math:`c = \\bar d`
  (the first pass's rounding, folded back into the mean), then :math:`y = \\gamma \\hat x + \\beta`;
- backward, per row: :math:`\\partial x = r(g - \\bar g - \\hat x\\,\\overline{g \\hat x})` with
  :math:`g = \\gamma\\,\\partial y`, and column accumulators for :math:`\\partial\\gamma` and
  :math:`\\partial\\beta`, added to row after row.

:func:`load` returns ``None`` where no C++ compiler exists (the benchmark then skips the row).
"""
from __future__ import annotations

import shutil

import torch

CPP = r"""
#include <torch/extension.h>
#include <cmath>

// One row x[0..D) -> mean and 1/sqrt(var + eps); centre = false gives RMSNorm (mean = 0).
template <typename T>
void row_stats(const T* x, int64_t D, bool centre, double eps, T& mean, T& rstd) {
  T m = 0, s = 0, c = 0;
  if (centre) {
    for (int64_t j = 0; j < D; ++j) m += x[j];
    m /= D;
  }
  for (int64_t j = 0; j < D; ++j) {          // second pass over d = x - m
    T d = x[j] - m;
    c += d;
    s += d * d;
  }
  c /= D;
  T var = s / D - (centre ? c * c : T(0));    // corrected two-pass variance
  mean = centre ? m + c : T(0);               // the rounding c folded into the mean
  rstd = T(1) / std::sqrt(var + T(eps));
}

std::vector<torch::Tensor> forward(torch::Tensor x, torch::Tensor w, c10::optional<torch::Tensor> b,
                                   double eps, bool centre) {
  auto D = x.size(-1);
  auto N = x.numel() / D;
  auto y = torch::empty_like(x);
  auto mean = torch::empty({N}, x.options());
  auto rstd = torch::empty({N}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_norm_forward", [&] {
    const scalar_t *X = x.data_ptr<scalar_t>(), *W = w.data_ptr<scalar_t>();
    const scalar_t* B = b.has_value() ? b->data_ptr<scalar_t>() : nullptr;  // no bias: no shift
    scalar_t *Y = y.data_ptr<scalar_t>(), *M = mean.data_ptr<scalar_t>();
    scalar_t* R = rstd.data_ptr<scalar_t>();
    for (int64_t i = 0; i < N; ++i) {
      const scalar_t* xi = X + i * D;
      scalar_t* yi = Y + i * D;
      row_stats(xi, D, centre, eps, M[i], R[i]);
      for (int64_t j = 0; j < D; ++j) {
        scalar_t v = (xi[j] - M[i]) * R[i] * W[j];
        yi[j] = B ? v + B[j] : v;
      }
    }
  });
  return {y, mean, rstd};
}

std::vector<torch::Tensor> backward(torch::Tensor dy, torch::Tensor x, torch::Tensor w,
                                    torch::Tensor mean, torch::Tensor rstd, bool centre) {
  auto D = x.size(-1);
  auto N = x.numel() / D;
  auto dx = torch::empty_like(x);
  auto dw = torch::zeros({D}, x.options());   // column accumulators
  auto db = torch::zeros({D}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_norm_backward", [&] {
    const scalar_t *G = dy.data_ptr<scalar_t>(), *X = x.data_ptr<scalar_t>();
    const scalar_t *W = w.data_ptr<scalar_t>(), *M = mean.data_ptr<scalar_t>();
    const scalar_t* R = rstd.data_ptr<scalar_t>();
    scalar_t *DX = dx.data_ptr<scalar_t>(), *DW = dw.data_ptr<scalar_t>();
    scalar_t* DB = db.data_ptr<scalar_t>();
    for (int64_t i = 0; i < N; ++i) {
      const scalar_t *gi = G + i * D, *xi = X + i * D;
      scalar_t* dxi = DX + i * D;
      scalar_t g_mean = 0, gx_mean = 0;
      for (int64_t j = 0; j < D; ++j) {        // row sums, and the columns' sums
        scalar_t xhat = (xi[j] - M[i]) * R[i];
        scalar_t g = gi[j] * W[j];
        g_mean += g;
        gx_mean += g * xhat;
        DW[j] += gi[j] * xhat;
        DB[j] += gi[j];
      }
      g_mean = centre ? g_mean / D : scalar_t(0);
      gx_mean /= D;
      for (int64_t j = 0; j < D; ++j) {
        scalar_t xhat = (xi[j] - M[i]) * R[i];
        dxi[j] = R[i] * (gi[j] * W[j] - g_mean - xhat * gx_mean);
      }
    }
  });
  return {dx, dw, db};
}
"""

_MODULE = None


def load(verbose: bool = False):
    """Compile (once per process, cached on disk by PyTorch) and return the extension module,
    or ``None`` where no C++ compiler is found."""
    global _MODULE
    if _MODULE is None:
        if shutil.which("c++") is None and shutil.which("g++") is None:
            return None
        from torch.utils.cpp_extension import load_inline

        _MODULE = load_inline(
            name="normlib_fused_reference",
            cpp_sources=CPP,
            functions=["forward", "backward"],
            extra_cflags=["-O3", "-march=native"],
            verbose=verbose,
        )
    return _MODULE


class _FusedNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps, centre):
        module = load()
        x = x.contiguous()
        b = None if bias is None else bias.contiguous()
        y, mean, rstd = module.forward(x, weight.contiguous(), b, eps, centre)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.centre = centre
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, rstd = ctx.saved_tensors
        dx, dw, db = load().backward(dy.contiguous(), x, weight.contiguous(), mean, rstd,
                                     ctx.centre)
        return dx, dw, (db if ctx.has_bias else None), None, None


def layer_norm(x, weight, bias, eps: float = 1e-5):
    """Layer norm over the last dimension with the fused kernel (forward and backward)."""
    return _FusedNorm.apply(x, weight, bias, eps, True)


def rms_norm(x, weight, eps: float = 1e-6):
    """RMSNorm over the last dimension with the fused kernel (forward and backward)."""
    return _FusedNorm.apply(x, weight, None, eps, False)
