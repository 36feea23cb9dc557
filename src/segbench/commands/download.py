"""`segbench download` (stage `download`): fetch, point at, or generate the raw dataset."""
from __future__ import annotations

import argparse

from .. import paths
from .common import load_params

HELP = "stage: fetch or generate the raw dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    from ..data.download import download

    params = load_params(args)
    record = download(params, paths.RAW_DIR)
    if record is None:
        print(f"generated the {params.data.dataset} dataset into {paths.RAW_DIR}")
    elif "url" in record:
        print(f"downloaded {record['url']} (sha256 ok), extracted {record['files']} files into {paths.RAW_DIR}")
    else:
        print(f"using {record['path']} in place ({record['files']} files, {record['bytes'] / 1e6:.1f} MB); "
              f"fingerprint in {paths.RAW_DIR / 'source.json'}")
