"""BarcodeBERT-style DNA encoder: transformer over k-mer tokens, mean-pooled.

The encoder returns per-token hidden states; :func:`mean_pool` averages them over
non-padding tokens to give the barcode embedding BarcodeBERT evaluates. The MLM
head predicts the original k-mer of masked positions during pretraining.
"""

from __future__ import annotations

import torch
from torch import nn

from biodiscover.encoders.config import DNAConfig
from biodiscover.encoders.tokenizer import KmerTokenizer


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average ``hidden`` [B, L, H] over positions where ``attention_mask`` is True."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class DNAEncoder(nn.Module):
    """Token + learned position embeddings → pre-norm TransformerEncoder."""

    def __init__(self, config: DNAConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = KmerTokenizer(config.k, config.max_nucleotides)
        self.token_embedding = nn.Embedding(self.tokenizer.vocab_size, config.hidden)
        self.position_embedding = nn.Embedding(self.tokenizer.max_tokens, config.hidden)
        layer = nn.TransformerEncoderLayer(
            d_model=config.hidden,
            nhead=config.heads,
            dim_feedforward=config.ff,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
            activation="gelu",
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers=config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.hidden)
        self.mlm_head = nn.Linear(config.hidden, self.tokenizer.vocab_size)

    @property
    def output_dim(self) -> int:
        return self.config.hidden

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, H]."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.token_embedding(ids) + self.position_embedding(positions).unsqueeze(0)
        x = self.transformer(x, src_key_padding_mask=~attention_mask)
        return self.norm(x)

    def embed(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled barcode embedding [B, H]."""
        return mean_pool(self(ids, attention_mask), attention_mask)

    def mlm_logits(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.mlm_head(self(ids, attention_mask))
