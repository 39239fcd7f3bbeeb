"""A small, readable decoder-only transformer for the book's chapters on today's networks.

Not part of the library: it exists so that the chapters on RMSNorm and on normalization in the
transformer can train the same model with the norm in different places and of different kinds.
The model is GPT-shaped and deliberately plain::

    tokens (B, T) -> token embedding + learned position embedding          (B, T, d)
                  -> n_layers blocks, each: causal self-attention, MLP, both residual
                  -> [final norm, Pre-LN only] -> linear head -> logits     (B, T, vocab)

Three switches choose what the chapters compare:

- ``placement="post"`` (Vaswani et al. 2017): the norm after each residual addition,
  ``x = norm(x + f(x))``; ``placement="pre"`` (Xiong et al. 2020): the norm at the start of each
  branch, ``x = x + f(norm(x))``, plus one final norm before the head (``final_norm=False``
  drops it).
- ``norm``: ``"ln"`` (:class:`normlib.nn.LayerNorm`), ``"rms"`` (:class:`normlib.nn.RMSNorm`,
  through the one name ``RMSNorm`` of this module), ``"bn"`` (:class:`normlib.nn.BatchNorm1d` over all ``B·T`` token positions
  of the batch, :class:`TokenBatchNorm`), ``"dyt"`` (Dynamic Tanh, :class:`DyT`), ``"none"``.
- ``qk_norm=True`` (Dehghani et al. 2023; Wortsman et al. 2023): a layer norm over each head's
  queries and over its keys before their dot products, which bounds the attention logits.

Every weight keeps PyTorch's default initialization (``nn.Linear``: uniform with variance
``1/(3·fan_in)``; ``nn.Embedding``: standard normal); :func:`xavier_init_` re-initializes a model
as Xiong et al. analyse it. :func:`train_lm` is the one seeded training
loop (Adam, optional linear warm-up) and :func:`evaluate_lm` the validation loss, so that two runs
differ in the model only.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

import normlib.functional as NF
import normlib.nn as NN
from normlib.book.data import CharCorpus

__all__ = [
    "NORMS",
    "DyT",
    "TokenBatchNorm",
    "RMSNorm",
    "rms_norm",
    "make_norm",
    "CausalSelfAttention",
    "attention_stats",
    "xavier_init_",
    "MLP",
    "Block",
    "TinyTransformer",
    "LMHistory",
    "train_lm",
    "train_runs",
    "evaluate_lm",
    "layer_grad_norms",
]

#: The values of the ``norm`` switch.
NORMS = ("ln", "rms", "bn", "dyt", "none")

EPS = 1e-5  # one epsilon for LN, RMSNorm and BN, so that they differ in their statistics only


# The one place the book's transformer chapters take RMSNorm from: normlib's (torch 2.13's
# signatures, so PyTorch's torch.nn.RMSNorm / torch.nn.functional.rms_norm would drop in here).
RMSNorm = NN.RMSNorm
rms_norm = NF.rms_norm


class DyT(nn.Module):
    r"""Dynamic Tanh (Zhu et al. 2025): :math:`y = \gamma \odot \tanh(\alpha x) + \beta`.

    An element-wise stand-in for a norm layer: no statistics at all, one learned scalar
    :math:`\alpha` (initialized to ``alpha_init``; 0.5 is the paper's default) and a learned
    per-feature gain :math:`\gamma` (ones) and shift :math:`\beta` (zeros).

    >>> DyT(4)(torch.zeros(2, 4)).tolist()
    [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    """

    def __init__(self, d_model: int, alpha_init: float = 0.5, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.full((), alpha_init, dtype=dtype))
        self.weight = nn.Parameter(torch.ones(d_model, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(d_model, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * torch.tanh(self.alpha * x) + self.bias


class TokenBatchNorm(nn.Module):
    """Batch norm of a ``(B, T, d)`` stream: one mean and variance per channel over all ``B·T`` tokens.

    In training mode a token's output depends on every token of the batch, the *later* ones of
    its own sequence included, so a BN language model is causal only in evaluation mode (running
    statistics). The statistics of the last training batch are kept in ``last_mean`` and
    ``last_var`` for the chapter that measures their spread.
    """

    def __init__(self, d_model: int, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.bn = NN.BatchNorm1d(d_model, eps=EPS, dtype=dtype)
        self.last_mean: Tensor | None = None
        self.last_var: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        flat = x.reshape(b * t, d)  # (B·T, d): every token position is one "sample" for BN
        if self.training:
            self.last_mean = flat.detach().mean(dim=0)
            self.last_var = flat.detach().var(dim=0, unbiased=False)
        return self.bn(flat).reshape(b, t, d)


def make_norm(kind: str, d_model: int, dtype: torch.dtype | None = None) -> nn.Module:
    """The norm layer the ``norm`` switch names (see :data:`NORMS`)."""
    if kind == "ln":
        return NN.LayerNorm(d_model, eps=EPS, dtype=dtype)
    if kind == "rms":
        return RMSNorm(d_model, eps=EPS, dtype=dtype)
    if kind == "bn":
        return TokenBatchNorm(d_model, dtype=dtype)
    if kind == "dyt":
        return DyT(d_model, dtype=dtype)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``t`` attends to positions ``<= t`` only.

    ``qk_norm=True`` normalizes each head's queries and keys with a layer norm (over the head's
    ``d/h`` features, with its own gain and shift) before the scaled dot product. While
    ``record`` is set, every forward stores the largest attention logit and the mean entropy of
    the attention rows (nats) in ``stats``; :func:`attention_stats` reads them.
    """

    def __init__(self, d_model: int, n_heads: int, context: int, dtype: torch.dtype | None = None,
                 qk_norm: bool = False) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model must be divisible by n_heads, got {d_model} and {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, dtype=dtype)
        self.out = nn.Linear(d_model, d_model, dtype=dtype)
        head = d_model // n_heads
        self.q_norm = NN.LayerNorm(head, eps=EPS, dtype=dtype) if qk_norm else nn.Identity()
        self.k_norm = NN.LayerNorm(head, eps=EPS, dtype=dtype) if qk_norm else nn.Identity()
        self.register_buffer("mask", torch.tril(torch.ones(context, context, dtype=torch.bool)), persistent=False)
        self.record = False
        self.stats: tuple[float, float] | None = None

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(x).split(d, dim=-1)  # each (B, T, d)
        q, k, v = (z.reshape(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))  # (B, h, T, d/h)
        q, k = self.q_norm(q), self.k_norm(k)  # qk-layernorm, or nothing
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // h)  # (B, h, T, T)
        scores = scores.masked_fill(~self.mask[:t, :t], float("-inf"))  # no look at later tokens
        attn = scores.softmax(dim=-1)
        if self.record:
            with torch.no_grad():
                p_log_p = torch.where(attn > 0, attn * attn.clamp_min(1e-30).log(), 0.0)
                self.stats = (scores.max().item(), -p_log_p.sum(-1).mean().item())
        y = attn @ v  # (B, h, T, d/h)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


@torch.no_grad()
def attention_stats(model: nn.Module, idx: Tensor) -> list[tuple[float, float]]:
    """``(largest attention logit, mean attention entropy)`` of every attention layer on ``idx``.

    The logit is the scaled dot product ``q·k/sqrt(d/h)`` before the softmax; the entropy of a row
    is at most ln(number of positions it sees), and near 0 when it attends to one position.

    >>> model = TinyTransformer(vocab_size=10, d_model=16, n_layers=2, n_heads=2, context=8)
    >>> stats = attention_stats(model, torch.zeros(3, 8, dtype=torch.int64))
    >>> len(stats), all(0 <= ent <= math.log(8) for _, ent in stats)
    (2, True)
    """
    layers = [m for m in model.modules() if isinstance(m, CausalSelfAttention)]
    was_training = model.training
    model.eval()
    for layer in layers:
        layer.record = True
    try:
        model(idx)
    finally:
        for layer in layers:
            layer.record = False
        model.train(was_training)
    return [layer.stats for layer in layers]


def xavier_init_(model: nn.Module) -> nn.Module:
    """Xavier-uniform weights and zero biases in every linear layer, as Xiong et al. analyse Post-LN.

    Xavier's variance ``2/(fan_in + fan_out)`` is three times PyTorch's default ``1/(3·fan_in)``
    for a square layer. Embeddings and norm layers keep theirs. Returns the model.
    """
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


class MLP(nn.Module):
    """The position-wise feed-forward branch: ``d -> 4d -> GELU -> d``."""

    def __init__(self, d_model: int, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, 4 * d_model, dtype=dtype)
        self.down = nn.Linear(4 * d_model, d_model, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(nn.functional.gelu(self.up(x)))


class Block(nn.Module):
    """One transformer layer: attention and MLP branches on the residual stream, norms placed by ``placement``."""

    def __init__(self, d_model: int, n_heads: int, context: int, placement: str, norm: str,
                 dtype: torch.dtype | None = None, qk_norm: bool = False) -> None:
        super().__init__()
        if placement not in ("post", "pre"):
            raise ValueError(f"placement must be 'post' or 'pre', got {placement!r}")
        self.placement = placement
        self.norm1 = make_norm(norm, d_model, dtype)
        self.attn = CausalSelfAttention(d_model, n_heads, context, dtype, qk_norm)
        self.norm2 = make_norm(norm, d_model, dtype)
        self.mlp = MLP(d_model, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if self.placement == "pre":  # the stream itself is never normalized
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attn(x))  # post: normalize after each residual addition
        return self.norm2(x + self.mlp(x))


class TinyTransformer(nn.Module):
    """A decoder-only character language model; see the module docstring.

    >>> model = TinyTransformer(vocab_size=10, d_model=16, n_layers=2, n_heads=2, context=8)
    >>> model(torch.zeros(3, 8, dtype=torch.int64)).shape
    torch.Size([3, 8, 10])
    """

    def __init__(self, vocab_size: int, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                 context: int = 64, placement: str = "pre", norm: str = "ln", final_norm: bool = True,
                 dtype: torch.dtype | None = None, qk_norm: bool = False) -> None:
        super().__init__()
        self.context = context
        self.tokens = nn.Embedding(vocab_size, d_model, dtype=dtype)
        self.positions = nn.Embedding(context, d_model, dtype=dtype)
        self.blocks = nn.ModuleList(
            Block(d_model, n_heads, context, placement, norm, dtype, qk_norm) for _ in range(n_layers)
        )
        use_final = placement == "pre" and final_norm
        self.final_norm = make_norm(norm, d_model, dtype) if use_final else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size, dtype=dtype)

    def hidden_states(self, idx: Tensor) -> list[Tensor]:
        """The residual stream ``(B, T, d)`` after the embedding and after each block."""
        t = idx.shape[1]
        x = self.tokens(idx) + self.positions(torch.arange(t, device=idx.device))
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        return states

    def forward(self, idx: Tensor) -> Tensor:
        return self.head(self.final_norm(self.hidden_states(idx)[-1]))


def _loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    logits = model(x)  # (B, T, vocab)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@dataclass
class LMHistory:
    """What :func:`train_lm` measured: the training loss of every step, the final validation loss.

    ``vocab_size`` sets the uniform predictor's loss, ln(vocabulary size): a run that ends above it
    has learned less than nothing, and :attr:`diverged` counts it as failed.

    >>> LMHistory([4.0, 1e11], 1e11, vocab_size=103).diverged  # finite, yet worse than uniform
    True
    >>> LMHistory([4.0, 2.0], 2.1, vocab_size=103).diverged
    False
    """

    step_loss: list[float] = field(default_factory=list)
    val_loss: float = math.nan
    vocab_size: int | None = None

    @property
    def uniform_loss(self) -> float:
        """ln(vocabulary size): the loss of predicting every character with the same probability."""
        return math.log(self.vocab_size) if self.vocab_size else math.inf

    @property
    def diverged(self) -> bool:
        """A loss that is not finite, or a final loss (validation, else the last step's) above :attr:`uniform_loss`."""
        if any(not math.isfinite(v) for v in self.step_loss):
            return True
        final = self.val_loss if math.isfinite(self.val_loss) else (self.step_loss[-1] if self.step_loss else math.nan)
        return final > self.uniform_loss


@torch.no_grad()
def evaluate_lm(model: nn.Module, corpus: CharCorpus, batches: int = 8, batch_size: int = 32,
                split: str = "val", seed: int = 1234) -> float:
    """Mean cross-entropy (nats per character) over ``batches`` seeded batches, in evaluation mode."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(batches):
        x, y = corpus.batch(split, batch_size, model.context, gen)
        total += _loss(model, x, y).item()
    model.train(was_training)
    return total / batches


def train_lm(model: nn.Module, corpus: CharCorpus, steps: int = 300, batch_size: int = 16, lr: float = 1e-3,
             warmup: int = 0, seed: int = 0,
             on_step: Callable[[nn.Module, int], None] | None = None) -> LMHistory:
    """Train with Adam (betas 0.9, 0.98, as in Vaswani et al. and Xiong et al.) on seeded batches.

    The learning rate rises linearly from ``lr / warmup`` to ``lr`` over the first ``warmup``
    steps and then stays at ``lr`` (``warmup=0``: constant). ``on_step(model, step)`` runs after
    every update. Training stops, with the last loss recorded, as soon as the loss is not finite;
    the validation loss is then ``nan``. The history knows the vocabulary size, so that
    :attr:`LMHistory.diverged` also flags a finite run worse than the uniform predictor.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(seed)
    hist = LMHistory(vocab_size=corpus.vocab_size)
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup) if warmup else lr
        x, y = corpus.batch("train", batch_size, model.context, gen)
        loss = _loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.step_loss.append(loss.item())
        if not math.isfinite(hist.step_loss[-1]):
            return hist
        if on_step is not None:
            on_step(model, step)
    hist.val_loss = evaluate_lm(model, corpus)
    return hist


def train_runs(corpus: CharCorpus, variants: dict[str, dict], seeds: tuple[int, ...], model_kw: dict,
               **train_kw) -> dict[tuple[str, int], tuple[TinyTransformer, LMHistory]]:
    """Train one model per variant and seed: ``TinyTransformer(**model_kw, **variant)`` seeded by ``seed``.

    ``variants`` maps a name to the model arguments that differ (``{"LN": {"norm": "ln"}, ...}``);
    a variant may also carry ``"warmup"`` or ``"lr"``, which go to :func:`train_lm` instead.
    Returns ``{(name, seed): (model, history)}``.
    """
    runs = {}
    for name, variant in variants.items():
        variant = dict(variant)
        kw = dict(train_kw)
        for key in ("warmup", "lr"):
            if key in variant:
                kw[key] = variant.pop(key)
        for seed in seeds:
            torch.manual_seed(seed)
            model = TinyTransformer(corpus.vocab_size, **model_kw, **variant)
            runs[(name, seed)] = (model, train_lm(model, corpus, seed=seed, **kw))
    return runs


def layer_grad_norms(model: TinyTransformer, x: Tensor, y: Tensor) -> list[float]:
    """The gradient norm of each block's parameters (all of them, as one vector) for one batch."""
    model.zero_grad()
    _loss(model, x, y).backward()
    norms = []
    for block in model.blocks:
        squares = sum((p.grad**2).sum() for p in block.parameters() if p.grad is not None)
        norms.append(math.sqrt(float(squares)))
    model.zero_grad()
    return norms
