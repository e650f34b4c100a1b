"""GPT-2 blocks on ``scaled_dot_product_attention`` with an explicit, preallocated KV cache.

The transformer of IndexTTS2's GPT stage is a stock GPT-2 (pre-LN blocks, tanh-GELU MLP, final
LayerNorm ``ln_f``) without its own token or position embeddings: UnifiedVoice adds its text and
mel position embeddings to the inputs. Parameters keep Hugging Face's names and its transposed
``Conv1D`` layout (``weight`` is ``(in, out)``), so the official ``gpt.*`` keys load as they are.

The cache is built for a batching engine:

- one preallocated tensor per keys/values for all layers, ``(layers, batch, heads, capacity, head_dim)``;
- every row keeps its own length: new positions are written at ``lengths[b]`` with a scatter, and a
  position attends to cache slots up to its own, so rows with different prefix lengths decode in
  one batch (no left padding, no position ids: GPT-2 here has no positional term of its own);
- a step has static shapes and no host synchronisation when called with ``key_span=None`` (the whole
  capacity), which is what CUDA-graph capture needs; eager callers pass the longest row's span to
  save work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from indextts2.errors import ConfigError

__all__ = ["GPT2Stack", "KVCache"]

LAYER_NORM_EPS = 1e-5  # GPT2Config.layer_norm_epsilon
MLP_EXPANSION = 4  # GPT2Config.n_inner = None -> 4 * n_embd
INIT_STD = 0.02  # GPT2Config.initializer_range (only used for dummy weights)


@dataclass
class KVCache:
    """Keys and values of every layer for a batch of sequences, preallocated to ``capacity`` positions.

    Attributes:
        keys: ``(layers, batch, heads, capacity, head_dim)``.
        values: same shape.
        lengths: ``(batch,)`` int64, the positions stored per row (the next write index).
    """

    keys: torch.Tensor
    values: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def allocate(
        cls,
        *,
        layers: int,
        batch: int,
        heads: int,
        head_dim: int,
        capacity: int,
        device: torch.device | str,
        dtype: torch.dtype,
    ) -> KVCache:
        shape = (layers, batch, heads, capacity, head_dim)
        return cls(
            keys=torch.zeros(shape, device=device, dtype=dtype),
            values=torch.zeros(shape, device=device, dtype=dtype),
            lengths=torch.zeros(batch, dtype=torch.int64, device=device),
        )

    @property
    def batch(self) -> int:
        return int(self.keys.shape[1])

    @property
    def capacity(self) -> int:
        return int(self.keys.shape[3])

    def reorder_(self, rows: torch.Tensor, *, span: int | None = None) -> None:
        """Row ``i`` becomes a copy of old row ``rows[i]`` (beam search); in place, shapes unchanged.

        ``span`` limits the copy to the first slots (it must cover every row's length).
        """
        end = self.capacity if span is None else span
        for cached in (self.keys, self.values):
            window = cached[:, :, :, :end]
            window.copy_(window.index_select(1, rows))
        self.lengths.copy_(self.lengths.index_select(0, rows))

    def reset_(self) -> None:
        """Forget every row (the memory stays allocated)."""
        self.lengths.zero_()

    def rows(self, start: int, stop: int) -> KVCache:
        """A view of rows ``[start, stop)``: what is written through it lands in this cache."""
        return KVCache(self.keys[:, start:stop], self.values[:, start:stop], self.lengths[start:stop])

    def copy_rows_(self, targets: torch.Tensor, sources: torch.Tensor, *, span: int | None = None) -> None:
        """Row ``targets[i]`` becomes a copy of row ``sources[i]``; every source is read before any write.

        Only the rows named are touched (a beam that keeps its own history costs nothing); ``span``
        limits the copy to the first slots (it must cover the sources' lengths).
        """
        end = self.capacity if span is None else span
        for cached in (self.keys, self.values):
            window = cached[:, :, :, :end]
            window.index_copy_(1, targets, window.index_select(1, sources))
        self.lengths.index_copy_(0, targets, self.lengths.index_select(0, sources))


class Conv1D(nn.Module):
    """Hugging Face GPT-2's linear layer: ``x @ weight + bias`` with ``weight`` of shape ``(in, out)``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.normal_(self.weight, std=INIT_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return out.view(*x.shape[:-1], out.shape[-1])


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.c_attn = Conv1D(dim, 3 * dim)
        self.c_proj = Conv1D(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        *,
        layer: int,
        cache: KVCache | None,
        visible: torch.Tensor | None,
        key_span: int | None,
    ) -> torch.Tensor:
        batch, time, dim = x.shape
        q, k, v = (
            t.view(batch, time, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
            for t in self.c_attn(x).split(dim, dim=2)
        )
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            slots = cache.lengths[:, None] + torch.arange(time, device=x.device)  # (B, T)
            index = slots[:, None, :, None].expand(batch, self.heads, time, self.head_dim)
            cache.keys[layer].scatter_(2, index, k)
            cache.values[layer].scatter_(2, index, v)
            span = cache.capacity if key_span is None else key_span
            keys = cache.keys[layer, :, :, :span]
            values = cache.values[layer, :, :, :span]
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible)
        out = out.transpose(1, 2).reshape(batch, time, dim)
        return self.c_proj(out)


class _MLP(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.c_fc = Conv1D(dim, MLP_EXPANSION * dim)
        self.c_proj = Conv1D(MLP_EXPANSION * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # GPT-2's "gelu_new"


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = _Attention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = _MLP(dim)

    def forward(
        self,
        x: torch.Tensor,
        *,
        layer: int,
        cache: KVCache | None,
        visible: torch.Tensor | None,
        key_span: int | None,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), layer=layer, cache=cache, visible=visible, key_span=key_span)
        return x + self.mlp(self.ln_2(x))


class GPT2Stack(nn.Module):
    """``layers`` GPT-2 blocks and the final ``ln_f``; inputs are embeddings, outputs hidden states.

    Args:
        dim: model width (``n_embd``).
        layers: number of blocks (``n_layer``).
        heads: attention heads (``n_head``).
    """

    def __init__(self, *, dim: int, layers: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"gpt.model_dim {dim} is not divisible by gpt.heads {heads}")
        self.dim = dim
        self.heads = heads
        self.h = nn.ModuleList(_Block(dim, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    @property
    def num_layers(self) -> int:
        return len(self.h)

    def allocate_cache(
        self, *, batch: int, capacity: int, device: torch.device | str | None = None
    ) -> KVCache:
        """A zeroed cache for ``batch`` rows of up to ``capacity`` positions, on this stack's device/dtype."""
        weight = self.ln_f.weight
        return KVCache.allocate(
            layers=self.num_layers,
            batch=batch,
            heads=self.heads,
            head_dim=self.dim // self.heads,
            capacity=capacity,
            device=weight.device if device is None else device,
            dtype=weight.dtype,
        )

    def forward(
        self,
        hidden: torch.Tensor,
        *,
        cache: KVCache | None = None,
        new_lengths: torch.Tensor | None = None,
        key_span: int | None = None,
    ) -> torch.Tensor:
        """Run the blocks over ``hidden`` ``(B, T, dim)``; returns ``ln_f`` of the output, same shape.

        Without a cache: causal self-attention over the T positions. Right padding is harmless,
        since no valid position attends to a later one.

        With a cache: row ``b``'s T positions are stored at slots ``lengths[b] ..`` and attend to
        every earlier slot of that row. Afterwards ``lengths`` grows by ``new_lengths`` (the valid,
        non-padding positions of each row; default T). ``key_span`` limits attention to the first
        slots (it must cover ``lengths + T`` of every row); None attends over the whole capacity.
        """
        visible = None
        if cache is not None:
            time = hidden.shape[1]
            span = cache.capacity if key_span is None else key_span
            query_slot = cache.lengths[:, None] + torch.arange(time, device=hidden.device)  # (B, T)
            key_slot = torch.arange(span, device=hidden.device)
            visible = (key_slot[None, None, :] <= query_slot[:, :, None]).unsqueeze(1)  # (B, 1, T, span)
        for layer, block in enumerate(self.h):
            hidden = block(hidden, layer=layer, cache=cache, visible=visible, key_span=key_span)
        if cache is not None:
            cache.lengths.add_(hidden.shape[1] if new_lengths is None else new_lengths)
        return self.ln_f(hidden)
