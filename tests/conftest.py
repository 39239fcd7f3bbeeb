import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def assert_close(actual, expected, dtype=None):
    """normlib against PyTorch: 1e-10 in float64, float32 rounding otherwise."""
    dtype = dtype or expected.dtype
    if dtype == torch.float64:
        torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)
    else:
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
