"""Checkpoints: a model's weights plus everything needed to rebuild it, loadable with
torch.load(weights_only=True) (plain containers and tensors only, no pickled objects)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .errors import DataError
from .io import load_torch, save_torch
from .models import build_model

FORMAT = 1


def save_checkpoint(path: str | Path, model: nn.Module, *, arch: str, options: dict, class_names: list[str],
                    image_size: list[int], **extra: Any) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch(path, {"format": FORMAT, "arch": arch, "options": options, "num_classes": len(class_names),
                      "class_names": list(class_names), "image_size": list(image_size), "state_dict": state, **extra})


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "state_dict" not in ckpt:
        raise DataError(f"{path}: not a segbench checkpoint (format {FORMAT}); delete it and re-run training")
    model = build_model(ckpt["arch"], ckpt["num_classes"], **ckpt["options"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise DataError(f"{path}: weights do not fit arch {ckpt['arch']!r} ({str(exc).splitlines()[0]}); re-run training") from None
    return model, ckpt
