"""Motion memory ``M x D`` with the two addressing routes of MemoryTalker (memorytalker.md §1.2-1.4).

* value route (training): ``f_m = E_m(v - tau)``; ``V = softmax_i(kappa cos(sg(f_m), M_i))``;
  ``value_read = V @ M`` (eq. 1-2). ``L_mem`` / ``L_align`` use it; only the memory receives their gradient.
* key route: ``K = softmax(kappa l)`` over the CTC logits ``l``; ``key_read = K @ (w * sg(M))`` where ``w``
  are the per-sample style weights (all ones without style) (eq. 5-6, stylised: eq. 14). The stop-gradient
  means the memory learns only from ``L_mem`` and ``L_align``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MotionMemory(nn.Module):
    """``M`` slots of width ``D``, cosine addressing with scale ``kappa``."""

    def __init__(self, slots: int, width: int, kappa: float) -> None:
        super().__init__()
        self.slots, self.width, self.kappa = int(slots), int(width), float(kappa)
        self.memory = nn.Parameter(torch.empty(self.slots, self.width))
        nn.init.xavier_normal_(self.memory)

    def key_address(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, T, M)`` CTC logits -> ``softmax(kappa * logits)`` ``(B, T, M)``."""
        return torch.softmax(self.kappa * logits, dim=-1)

    def key_read(self, address: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        """``sum_i K[i] w[i] sg(M)[i]``: ``address`` ``(B, T, M)``, ``style_weights`` ``(B, M)`` or None ->
        ``(B, T, D)``."""
        mem = self.memory.detach().to(address.dtype)
        if style_weights is None:
            return torch.matmul(address, mem)
        return torch.matmul(address * style_weights.unsqueeze(1).to(address.dtype), mem)

    def value_address(self, motion_feat: torch.Tensor) -> torch.Tensor:
        """``softmax_i(kappa cos(sg(f_m), M_i))``: ``(B, T, D)`` -> ``(B, T, M)``."""
        f = F.normalize(motion_feat.detach(), dim=-1)
        m = F.normalize(self.memory, dim=-1).to(f.dtype)
        return torch.softmax(self.kappa * torch.matmul(f, m.t()), dim=-1)

    def value_read(self, address: torch.Tensor) -> torch.Tensor:
        """``V @ M``: ``(B, T, M)`` -> ``(B, T, D)`` (gradient to the memory)."""
        return torch.matmul(address, self.memory.to(address.dtype))
