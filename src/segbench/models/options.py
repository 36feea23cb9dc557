"""What the architectures' torch-free declarations (archs/<arch>.py) share: the tasks tuple of
depth-capable architectures, the depth-decoder option, and the options of torchvision's
ready-made models. Torch-free, like the declarations that import it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..schema import option

SEG_DEPTH = ("segmentation", "seg_depth")
DEPTH_DECODERS = ("separate", "shared")  # multitask.py: how a depth branch reads the features


def depth_decoder_option() -> Any:
    """The `depth_decoder` field of a depth-capable model's options (read only under seg_depth)."""
    return option("separate", choices=DEPTH_DECODERS)


@dataclass(frozen=True)
class TorchvisionOptions:
    """No options: the point of these rows is torchvision's model exactly as shipped."""
