"""The book's transformer and its text data: shapes, causality, the two switches, determinism."""
import pytest
import torch

import normlib.nn as NN
import math

from normlib.book.data import ngram_entropy, pydoc_text
from normlib.book.transformer import NORMS, DyT, LMHistory, RMSNorm, TinyTransformer, TokenBatchNorm, train_lm

VOCAB, T = 11, 8


def model(**kw):
    torch.manual_seed(0)
    return TinyTransformer(VOCAB, d_model=16, n_layers=2, n_heads=2, context=T, dtype=torch.float64, **kw)


def test_logits_have_shape_batch_positions_vocab():
    assert model()(torch.zeros(3, T, dtype=torch.int64)).shape == (3, T, VOCAB)


@pytest.mark.parametrize("placement", ["post", "pre"])
@pytest.mark.parametrize("norm", NORMS)
def test_output_at_position_t_does_not_depend_on_later_tokens(placement, norm):
    m = model(placement=placement, norm=norm).eval()  # BN is causal only with running statistics
    idx = torch.randint(VOCAB, (2, T), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % VOCAB  # change every token after position 4
    a, b = m(idx), m(changed)
    assert torch.equal(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_norm_switch_builds_the_named_layers():
    kinds = {"ln": NN.LayerNorm, "rms": RMSNorm, "bn": TokenBatchNorm, "dyt": DyT, "none": torch.nn.Identity}
    for name, cls in kinds.items():
        m = model(norm=name)
        assert isinstance(m.blocks[0].norm1, cls) and isinstance(m.final_norm, cls)
    with pytest.raises(ValueError, match="norm must be one of"):
        model(norm="gn")


def test_placement_switch_moves_the_norm_and_the_final_norm():
    x = torch.randn(2, T, 16, dtype=torch.float64)
    post, pre = model(placement="post"), model(placement="pre")
    assert isinstance(post.final_norm, torch.nn.Identity) and isinstance(pre.final_norm, NN.LayerNorm)
    y = post.blocks[0](x)  # post: the stream leaves every block layer-normalized
    assert torch.allclose(y.mean(-1), torch.zeros(2, T, dtype=torch.float64), atol=1e-12)
    assert not torch.allclose(pre.blocks[0](x).mean(-1), torch.zeros(2, T, dtype=torch.float64), atol=1e-3)
    assert isinstance(model(placement="pre", final_norm=False).final_norm, torch.nn.Identity)
    with pytest.raises(ValueError, match="placement"):
        model(placement="middle")


def test_batch_norm_in_a_transformer_normalizes_each_channel_over_all_tokens():
    bn = TokenBatchNorm(4, dtype=torch.float64)
    y = bn(3 + 2 * torch.randn(5, 7, 4, dtype=torch.float64)).reshape(35, 4)
    assert torch.allclose(y.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert bn.last_mean.shape == (4,) and bn.bn.num_batches_tracked == 1


def test_training_is_deterministic_and_lowers_the_loss():
    corpus = pydoc_text()

    def run():
        torch.manual_seed(0)
        m = TinyTransformer(corpus.vocab_size, d_model=16, n_layers=1, n_heads=2, context=16, dtype=torch.float64)
        return train_lm(m, corpus, steps=30, batch_size=4, lr=3e-3, warmup=5, seed=0)

    first, second = run(), run()
    assert first.step_loss == second.step_loss and first.val_loss == second.val_loss
    assert first.step_loss[-1] < first.step_loss[0]


def test_pydoc_split_is_by_topic_and_batches_are_seeded():
    corpus = pydoc_text()
    assert len(corpus.val_topics) == 15 and 0.05 < len(corpus.val) / (len(corpus.train) + len(corpus.val)) < 0.1
    x1, y1 = corpus.batch("train", 3, 10, torch.Generator().manual_seed(0))
    x2, _ = corpus.batch("train", 3, 10, torch.Generator().manual_seed(0))
    assert torch.equal(x1, x2) and torch.equal(x1[:, 1:], y1[:, :-1])


def test_diverged_counts_a_finite_run_worse_than_the_uniform_predictor():
    uniform = math.log(103)
    assert LMHistory([4.0, float("nan")], vocab_size=103).diverged  # not finite
    assert LMHistory([4.0, 3.0], 1.1e11, vocab_size=103).diverged  # finite, the probe's 1.1e11
    assert LMHistory([4.0, 3.0], uniform + 1e-9, vocab_size=103).diverged  # just worse than uniform
    assert not LMHistory([4.0, 3.0], uniform - 1e-9, vocab_size=103).diverged
    assert LMHistory([4.0, uniform + 0.1], vocab_size=103).diverged  # no validation loss: the last step's
    assert not LMHistory([4.0, 1e11], 2.0).diverged  # without a vocabulary only non-finite losses count


def test_train_lm_flags_a_blown_up_run_as_diverged():
    corpus = pydoc_text()
    torch.manual_seed(0)
    m = TinyTransformer(corpus.vocab_size, d_model=16, n_layers=1, n_heads=2, context=16, norm="none",
                        dtype=torch.float64)
    hist = train_lm(m, corpus, steps=20, batch_size=4, lr=30.0, seed=0)  # an absurd rate
    assert hist.vocab_size == corpus.vocab_size and hist.diverged
    assert not math.isfinite(hist.val_loss) or hist.val_loss > math.log(corpus.vocab_size)


def test_matched_split_has_the_training_texts_statistics():
    corpus = pydoc_text(val_offset=1)
    v = corpus.vocab_size
    gap = abs(ngram_entropy(corpus.val, 2, v) - ngram_entropy(corpus.train, 2, v))
    assert gap < 0.05 and pydoc_text().val_topics != corpus.val_topics
    with pytest.raises(ValueError):
        pydoc_text(val_offset=5)
