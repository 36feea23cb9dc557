"""Small helpers shared by model families (not an architecture: registers nothing)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the bottom and right edges so H and W are multiples of `multiple`.

    Networks that stride a fixed number of times and add or unpool exact shapes (ENet, ESNet,
    the no-skip baseline) need sizes that halve cleanly; padding then cropping the logits back
    with ``[..., :h, :w]`` lets them accept any input size, odd or tiny, without changing the
    architecture. Padding at the bottom/right keeps pixel (0, 0) aligned, so the crop is exact.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return F.pad(x, [0, pw, 0, ph]) if ph or pw else x
