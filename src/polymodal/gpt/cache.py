"""The KV cache: keys and values of every layer for the positions seen so far, so that a generation step
costs one token instead of the whole context.

Two modes. A plain cache holds up to ``capacity`` positions and refuses more (with learned or sinusoidal
positions the context must then be cropped and re-run). A ``rolling`` cache (rotary positions) is a ring of
the last ``capacity`` positions: each new token overwrites the oldest slot, so generation continues past
``block_size`` at one token per step. The model then attends through a sliding window of ``capacity``
positions in every layer (Mistral-style sliding-window attention); see :mod:`polymodal.gpt.generate` for the
uncached computation that gives the same tokens.
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of every layer, (B, H, ``capacity``, C/H) buffers allocated on a layer's first write
    and filled in place (growing them with ``torch.cat`` would copy the whole past at every token). They start
    at zero, not uninitialised: the compiled decode step reads every slot and masks the unfilled ones, and a
    masked NaN would still poison the sum (0·NaN).

    Args:
        capacity: Most positions the cache holds (the model's ``block_size``).
        rolling: Keep the last ``capacity`` positions in a ring instead of refusing more.
    """

    def __init__(self, capacity: int, rolling: bool = False) -> None:
        self.capacity, self.rolling = capacity, rolling
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.n: list[int] = []  # positions seen per layer (absolute: a rolling cache keeps counting)

    @property
    def length(self) -> int:
        """Positions seen (in layer 0, which a forward pass updates first)."""
        return self.seen(0)

    def seen(self, layer: int) -> int:
        return self.n[layer] if layer < len(self.n) else 0

    def held(self, layer: int) -> int:
        """Positions of ``layer`` in the buffers now."""
        return min(self.seen(layer), self.capacity)

    def _alloc(self, layer: int, k: torch.Tensor) -> None:
        if layer == len(self.k):
            b, h, _, d = k.shape
            self.k.append(k.new_zeros(b, h, self.capacity, d))
            self.v.append(k.new_zeros(b, h, self.capacity, d))
            self.n.append(0)

    def past(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The held keys/values of ``layer`` in order of position, oldest first: (B, H, held, C/H)."""
        n, m = self.seen(layer), self.held(layer)
        k, v = self.k[layer][:, :, :m], self.v[layer][:, :, :m]
        if n <= self.capacity:
            return k, v
        s = n % self.capacity  # the oldest position's slot
        return torch.cat([k[:, :, s:], k[:, :, :s]], dim=2), torch.cat([v[:, :, s:], v[:, :, :s]], dim=2)

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store this step's (B, H, T_new, C/H) keys/values (a rolling cache keeps the last ``capacity``)."""
        self._alloc(layer, k)
        n, t = self.n[layer], k.shape[2]
        if not self.rolling and n + t > self.capacity:
            raise ValueError(f"gpt: KV cache holds {self.capacity} positions; {n + t} requested")
        keep = min(t, self.capacity)
        slot = (n + t - keep) % self.capacity
        if slot + keep <= self.capacity:  # one contiguous run of slots (always, for a plain cache)
            self.k[layer][:, :, slot : slot + keep] = k[:, :, t - keep :]
            self.v[layer][:, :, slot : slot + keep] = v[:, :, t - keep :]
        else:
            slots = torch.arange(n + t - keep, n + t, device=k.device) % self.capacity
            self.k[layer].index_copy_(2, slots, k[:, :, t - keep :])
            self.v[layer].index_copy_(2, slots, v[:, :, t - keep :])
        self.n[layer] = n + t

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write one step's keys/values and return every held one, in slot order (for a rolling cache that is
        not position order, which attention without a mask does not need: a single new token sees the whole
        window)."""
        self.write(layer, k, v)
        m = self.held(layer)
        return self.k[layer][:, :, :m], self.v[layer][:, :, :m]

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search reorders its hypotheses every step)."""
        self.k = [k.index_select(0, index) for k in self.k]
        self.v = [v.index_select(0, index) for v in self.v]
