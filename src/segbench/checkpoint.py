"""Checkpoints: a model's weights plus everything needed to rebuild it, loadable with
torch.load(weights_only=True) (plain containers and tensors only, no pickled objects)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from torch import nn

from .errors import DataError, SegbenchError, first_line
from .io import load_torch, save_torch, sha256_file
from .models import build_model

FORMAT = 1


def save_checkpoint(path: str | Path, model: nn.Module, *, arch: str, options: dict, class_names: list[str],
                    image_size: list[int], task: str = "segmentation", **extra: Any) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch(path, {"format": FORMAT, "arch": arch, "options": options, "task": task, "num_classes": len(class_names),
                      "class_names": list(class_names), "image_size": list(image_size), "state_dict": state, **extra})


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict]:
    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "state_dict" not in ckpt:
        raise DataError(f"{path}: not a segbench checkpoint (format {FORMAT}); delete it and re-run training")
    missing = [k for k in ("arch", "num_classes", "options") if k not in ckpt]
    if missing:
        raise DataError(f"{path}: checkpoint lacks {', '.join(missing)}; delete it and re-run training")
    try:
        model = build_model(ckpt["arch"], ckpt["num_classes"], task=ckpt.get("task", "segmentation"), **ckpt["options"])
    except SegbenchError as exc:
        raise DataError(f"{path}: cannot rebuild its model ({exc}); re-run training") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise DataError(f"{path}: weights do not fit arch {ckpt['arch']!r} ({first_line(exc)}); re-run training") from None
    return model, ckpt


# Resume checkpoints: the whole training state after an epoch, so a killed run continues where it
# stopped and ends bit-identical to an uninterrupted one (CPU, same seed). They live beside the
# stage output (data/checkpoints/<model>.resume.pt) but are not a DVC output: DVC deletes declared
# outputs before it runs a stage, which would throw the progress away.
RESUME_FORMAT = 2  # 2: Progress keeps the best epoch as a history row (one copy of each field)
# Fields of train: that change how fast training runs but not what it computes.
_SPEED_ONLY = ("threads", "num_workers")


def resume_path_for(checkpoint_path: str | Path) -> Path:
    path = Path(checkpoint_path)
    return path.with_name(f"{path.stem}.resume.pt")


# The code that decides what training computes (the train stage's code deps and what they use to
# parse params, validate and pick the best epoch): a resume continues that computation, not an edited one.
_TRAINING_CODE = ("engine.py", "training_run.py", "state.py", "runtime.py", "tasks.py", "losses.py", "optim.py", "metrics.py",
                  "evaluate.py", "checkpoint.py", "distributed.py", "config.py", "sections.py", "schema.py", "models",
                  "data/dataset.py")


def _source_digest() -> str:
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in _TRAINING_CODE:
        files = sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [root / name]
        for file in files:
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def run_fingerprint(spec: Any, *, seed: int, augmentation: Any, manifest_path: str | Path, world_size: int) -> str:
    """What a resume checkpoint must match: model, training settings, seed, augmentation, the data
    (its preprocess manifest), the number of processes, and the code."""
    from .schema import to_dict

    train = {k: v for k, v in to_dict(spec.train).items() if k not in _SPEED_ONLY}
    parts = {"format": RESUME_FORMAT, "task": getattr(spec, "task", "segmentation"), "arch": spec.arch,
             "options": spec.options, "train": train, "seed": seed,
             "augmentation": to_dict(augmentation) if spec.train.augment and augmentation is not None else None,
             "manifest": sha256_file(manifest_path), "world_size": world_size, "code": _source_digest()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def save_resume(path: str | Path, fingerprint: str, state: dict) -> None:
    save_torch(path, {"format": RESUME_FORMAT, "fingerprint": fingerprint, **state})


def load_resume(path: str | Path, fingerprint: str) -> tuple[dict | None, str]:
    """(state, note): the saved state when `path` holds a resume checkpoint of this very run, else
    None and why it is not used ("" when there is no file)."""
    path = Path(path)
    if not path.is_file():
        return None, ""
    try:
        state = load_torch(path)
    except DataError as exc:
        return None, f"{exc}; starting fresh"
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        return None, f"{path}: not a segbench resume checkpoint (format {RESUME_FORMAT}); starting fresh"
    if state.get("fingerprint") != fingerprint:
        return None, f"{path}: written by a different run (params, data, code or process count changed); starting fresh"
    return state, ""
