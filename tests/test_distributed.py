"""normlib.nn.SyncBatchNorm against PyTorch's single-process batch norm, on 2 and 3 local processes.

Each test starts fresh processes (gloo on 127.0.0.1) with short collective timeouts, so a
failure ends in an error within seconds instead of a hang.
"""
import os

import pytest
import torch

from normlib.book.distributed import compare_with_single_process, launch
from normlib.nn import SyncBatchNorm

TIMEOUT = 10.0  # seconds a collective may wait for a peer


@pytest.mark.parametrize("batch_sizes", [[3, 5], [2, 4, 3], [0, 4]], ids=["2 processes", "3 processes", "an empty slice"])
def test_sync_batch_norm_equals_batch_norm_over_the_concatenated_batch(batch_sizes):
    results = launch(compare_with_single_process, len(batch_sizes), batch_sizes, (4, 3, 3), 3, 0, timeout=TIMEOUT)
    for rank, worst in enumerate(results):
        for quantity, difference in worst.items():
            assert difference < 1e-10, (rank, quantity, difference)  # float64 rounding


def _mismatched_channels(rank, world_size):
    layer = SyncBatchNorm(4 + rank)
    layer(torch.randn(6, 4 + rank, 2, 2))


def test_a_different_channel_count_on_one_process_is_a_clear_error_on_all():
    with pytest.raises(RuntimeError) as info:
        launch(_mismatched_channels, 2, timeout=TIMEOUT)
    message = str(info.value)
    assert "2 of 2 processes failed" in message
    assert message.count("same number of channels on every process") == 2, message


def _one_process_dies(rank, world_size):
    layer = SyncBatchNorm(3)
    layer(torch.randn(4, 3, 2, 2))  # a first step that succeeds
    torch.distributed.barrier()
    if rank == 1:
        os._exit(3)  # dies without a word
    layer(torch.randn(4, 3, 2, 2))


def test_a_process_that_dies_gives_an_error_not_a_hang():
    with pytest.raises(RuntimeError) as info:
        launch(_one_process_dies, 2, timeout=TIMEOUT)
    message = str(info.value)
    assert "process 1: process exited with code 3" in message, message
    assert "process 0: RuntimeError: SyncBatchNorm: exchanging batch statistics" in message, message


def test_without_a_process_group_it_is_plain_batch_norm():
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    sync, plain = SyncBatchNorm(3, dtype=torch.float64), torch.nn.BatchNorm2d(3, dtype=torch.float64)
    torch.testing.assert_close(sync(x), plain(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(sync.running_var, plain.running_var, rtol=1e-10, atol=1e-10)


def test_convert_sync_batchnorm_keeps_parameters_and_statistics():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    model[1].running_mean.fill_(0.5)
    converted = SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(converted[1], SyncBatchNorm)
    assert torch.equal(converted[1].running_mean, torch.full((3,), 0.5))


def _one_process_is_late(rank, world_size):
    layer = SyncBatchNorm(3)
    if rank == 1:
        import time

        time.sleep(6)  # longer than the group's 2 s timeout
        return "late"
    layer(torch.randn(4, 3, 2, 2))


def test_a_process_that_never_arrives_gives_a_timeout_error_not_a_hang():
    with pytest.raises(RuntimeError, match=r"process 0: RuntimeError: SyncBatchNorm: exchanging .* within the process group.s timeout"):
        launch(_one_process_is_late, 2, timeout=2.0)


def test_it_is_importable_next_to_the_other_modules_as_normlib_nn_sync_batch_norm():
    import normlib.nn

    assert normlib.nn.SyncBatchNorm is SyncBatchNorm
