"""Model registry: an architecture is a name, an options dataclass and a builder.

    build_model("unet", num_classes=6, base_channels=16)
    build_model("unet", num_classes=6, task="seg_depth", depth_decoder="shared")

Adding an architecture is one module that calls `registry.register_model`, plus its torch-free
declaration `archs/<arch>.py` (its options dataclass and one `declare_model` line): validating
params imports no torch and only the declarations of the architectures params name; the
building module is imported on the first build. Every model maps (N, 3, H, W) images, any H and W, to named outputs (a dict, as
torchvision's segmentation models return): `{"out": N x num_classes x H x W logits}`.

Under `task: seg_depth` (architectures registered with that task: `archs_for("seg_depth")`) the dict
also holds `"depth"`, N x 1 x H x W in metres; the depth head's mean and std come from
`set_depth_statistics` (see `multitask`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..schema import to_dict
from .registry import MODELS, ModelEntry, archs_for, builder, check_task, parse_model_options, register_model  # noqa: F401

if TYPE_CHECKING:
    from torch import nn


def __getattr__(name: str) -> Any:
    """The depth head's parts, re-exported without importing torch until asked for."""
    if name in ("DepthHead", "set_depth_statistics"):
        from . import multitask

        return getattr(multitask, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validate_model_options(arch: Any, options: dict, where: str) -> dict[str, Any]:
    """Check a params.yaml model entry; returns its options with defaults filled in."""
    return to_dict(parse_model_options(arch, options, where))


def build_model(arch: str, num_classes: int, task: str = "segmentation", **options: Any) -> nn.Module:
    """The model returns `{"out": logits}`, plus `"depth"` for task seg_depth (module docstring)."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes: {num_classes!r} is not valid; expected an integer >= 1")
    check_task(arch, task, str(arch))
    opts = parse_model_options(arch, options, arch)
    build = builder(arch)
    return build(num_classes, opts, task) if len(MODELS.get(arch).tasks) > 1 else build(num_classes, opts)


def batch_norm_problem(arch: str, options: dict, image_size: tuple[int, int], batch_size: int) -> str | None:
    """Why training `arch` on batches of `batch_size` images of `image_size` would fail in a
    BatchNorm layer (one value per channel: torch refuses to normalise it), or None.

    Runs one training-mode forward pass on the meta device: shapes only, no memory, no compute.
    Inconclusive probes (an op without a meta kernel, weights that cannot be read) say None and
    leave the verdict to training.
    """
    if batch_size >= 2:
        return None  # BatchNorm then always sees >= 2 values per channel
    import torch

    try:
        with torch.device("meta"):
            model = build_model(arch, 2, **{**options, "pretrained": False} if "pretrained" in options else options)
        model.train()
        with torch.no_grad():
            model(torch.empty(batch_size, 3, *image_size, device="meta"))
    except ValueError as exc:
        if "Expected more than 1 value per channel" in str(exc):
            return (f"in training a BatchNorm layer would see {batch_size} image x a 1x1 feature map, a single value "
                    "per channel, which torch cannot normalise")
        return None
    except Exception:
        return None
    return None
