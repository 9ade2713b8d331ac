"""Pre-norm Transformer encoder shared by the sequence models (nanoGPT-style).

One attention mask serves both directions: ``allowed[b, i, j]`` = query i may
attend to key j (a float mask, -inf where not allowed, when a model adds a bias to
the logits). Padding keys are never allowed; causal models also forbid j > i.
Every query may always attend to itself, so a row of pure padding never yields an
all-masked softmax (NaN); those outputs are ignored downstream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attention_mask(key_valid: torch.Tensor, causal: bool) -> torch.Tensor:
    """``[B, 1, L, L]`` bool mask (True = attend) from ``key_valid`` ``[B, L]``."""
    length = key_valid.shape[1]
    allowed = key_valid[:, None, :].expand(-1, length, -1)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=key_valid.device).tril()
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=key_valid.device)
    return allowed[:, None, :, :]


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, attention_dropout: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
        self.heads = heads
        self.attention_dropout = attention_dropout  # on the attention probabilities
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).split(hidden, dim=2)
        q, k, v = (t.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.attention_dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).contiguous().view(batch, length, hidden)
        return self.resid_dropout(self.proj(y))


class FeedForward(nn.Module):
    def __init__(self, hidden: int, dropout: float, expansion: int = 4):
        super().__init__()
        self.fc = nn.Linear(hidden, expansion * hidden)
        self.proj = nn.Linear(expansion * hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.ln_attn = nn.LayerNorm(hidden)
        self.attn = SelfAttention(hidden, heads, dropout, attention_dropout)
        self.ln_ff = nn.LayerNorm(hidden)
        self.ff = FeedForward(hidden, dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_attn(x), allowed)
        return x + self.ff(self.ln_ff(x))


class TransformerEncoder(nn.Module):
    def __init__(self, hidden: int, layers: int, heads: int, dropout: float, attention_dropout: float):
        """``dropout``: on each block's attention and feed-forward outputs; ``attention_dropout``:
        on the attention probabilities."""
        super().__init__()
        self.blocks = nn.ModuleList(Block(hidden, heads, dropout, attention_dropout) for _ in range(layers))
        self.ln_final = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor, causal: bool,
                attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        """``attn_bias``: ``[B, heads, L, L]`` added to every layer's attention logits (e.g. a
        relative-time bias), or None."""
        allowed = attention_mask(key_valid, causal)
        if attn_bias is not None:
            allowed = attn_bias.masked_fill(~allowed, float("-inf"))
        for block in self.blocks:
            x = block(x, allowed)
        return self.ln_final(x)


def init_weights(module: nn.Module) -> None:
    """GPT-2 style init: N(0, 0.02) for linear and embedding weights."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
