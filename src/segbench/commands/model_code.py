"""`segbench model-code` (stage `model_code`): write each model's code manifest, the files its
architecture is built from with their SHA-256 (segbench.models.code), one file per model.

A model's train, evaluate and profile stages depend on its manifest: an edit to one architecture's
module changes the manifests of the models built from it, and only theirs re-run. Torch-free (a
second), so it runs on any edit under src/segbench/models; unchanged manifests keep their hash.
"""
from __future__ import annotations

import argparse

from .. import paths
from .common import load_params

HELP = "stage: write the code manifest of each model (the files its architecture is built from)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    import shutil

    from ..io import write_json
    from ..models.code import code_manifest

    params = load_params(args)
    shutil.rmtree(paths.MODEL_CODE_DIR, ignore_errors=True)  # a removed model leaves no manifest behind
    for name, spec in params.models.items():
        write_json(paths.model_code_path(name), {"arch": spec.arch, "files": code_manifest(spec.arch)})
    print(f"wrote the code manifests of {len(params.models)} models into {paths.MODEL_CODE_DIR}")
