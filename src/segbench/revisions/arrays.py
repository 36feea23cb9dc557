"""A revision's per-image statistics (metrics/<model>/seeds/<seed>/per_image.npz): what the paired
bootstrap between two revisions resamples.

They are DVC outputs (in the cache, not in git): for a commit or an experiment they are read
through DVC's file system at that revision (`dvc.api.DVCFileSystem`, what `dvc.api.open` uses:
the workspace, the local cache or the default remote), for the workspace from disk. When one
cannot be had, the caller falls back to the per-seed values in git and says why.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import paths
from .read import Revision

ARRAYS = ("mask_counts", "depth_sums")


@dataclass(frozen=True)
class PerImage:
    """{array name: [seeds, images, ...]} for the arrays every seed has, or None and why not."""

    arrays: dict[str, np.ndarray] | None
    missing: str = ""

    @property
    def available(self) -> bool:
        return self.arrays is not None


class PerImageReader:
    """Reads one revision's per-image files; DVC's file system is opened once, on the first read."""

    def __init__(self, revision: Revision, root: Path) -> None:
        self.revision, self.root = revision, Path(root)
        self._fs = None
        self._fs_error: str | None = None

    def load(self, model: str, seeds: list[int]) -> PerImage:
        per_seed = []
        for seed in seeds:
            path = paths.per_image_path(model, seed).as_posix()
            data, why = self._read(path)
            if data is None:
                return PerImage(None, f"{self.revision.label}: {path} {why}")
            try:
                with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                    per_seed.append({name: npz[name] for name in ARRAYS if name in npz.files})
            except (OSError, ValueError) as exc:
                return PerImage(None, f"{self.revision.label}: {path} unreadable ({exc})")
        return _stack(per_seed, model, self.revision)

    def _read(self, path: str) -> tuple[bytes | None, str]:
        if self.revision.is_workspace:
            try:
                return (self.root / path).read_bytes(), ""
            except OSError:
                return None, "is not in the workspace (dvc checkout, or dvc repro)"
        fs = self._dvc_fs()
        if fs is None:
            return None, f"cannot be read through DVC ({self._fs_error})"
        try:
            with fs.open(path, mode="rb") as fh:
                return fh.read(), ""
        except FileNotFoundError:
            return None, self._not_found()
        except Exception as exc:  # a remote that cannot be reached, a DVC error: fall back, saying why
            return None, f"could not be read through DVC ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"

    def _not_found(self) -> str:
        """What will work on this clone: `dvc pull` only where a remote is configured (`dvc remote list`)."""
        if _remotes(self.root):
            return ("is in neither git nor the local DVC cache: `dvc fetch --all-commits` gets every revision's "
                    "from the remote, then re-run segbench diff")
        return ("is in neither git nor the DVC cache, and no DVC remote is configured (`dvc remote list` is empty): "
                "this clone cannot get it, so the per-seed values in git are compared (Welch); runs from now on keep "
                "the per-image files in git, so diffs between revisions made from now on are paired and exact")

    def _dvc_fs(self):
        if self._fs is None and self._fs_error is None:
            try:
                from dvc.api import DVCFileSystem

                self._fs = DVCFileSystem(str(self.root), rev=self.revision.sha)
            except Exception as exc:  # not a DVC project, a broken dvc.yaml at that revision
                self._fs_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return self._fs


def _stack(per_seed: list[dict[str, np.ndarray]], model: str, revision: Revision) -> PerImage:
    names = [n for n in ARRAYS if per_seed and all(n in d for d in per_seed)]
    if not names:
        return PerImage(None, f"{revision.label}: {model}'s per-image files hold no {' or '.join(ARRAYS)}")
    for name in names:
        if len({d[name].shape for d in per_seed}) > 1:
            return PerImage(None, f"{revision.label}: {model}'s seeds were evaluated on different images ({name} shapes differ)")
    return PerImage({n: np.stack([d[n] for d in per_seed]).astype(np.float64) for n in names})


def _remotes(root: Path) -> list[str]:
    """The DVC remotes configured for the repository at root (the `dvc remote list` names); [] when none or unreadable."""
    try:
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            return list(repo.config.get("remote", {}))
    except Exception:  # not a DVC project or an unreadable config: no remote to advise
        return []
