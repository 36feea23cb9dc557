"""Do colour masks with a "void" colour decode to the index masks they were drawn from?

    python benchmarks/bench_ignore_colours.py [--images 80] [--size 256 256] [--quality 90] [--void 0.32]

Draws scenes with the embedded generator (exact index masks, 6 classes), paints a void band
(up to --void of each mask, varying per image) and renders every mask in a Cityscapes-like
palette, void white. Each photo and colour mask is saved side by side as one JPEG (the
cityscapes_pairs layout, at --quality), then decoded by segbench's `cityscapes_pairs` source with
`preset: custom`, `ignore_colors: [void]` and the default tolerance and max_unmatched.

Prints: agreement with the drawn index masks on labelled pixels (target >= 98%), the share of
void pixels decoded to ignore_index (target >= 99.9%), the largest unmatched share of one
image, and how many images the same data fails on without `ignore_colors` (the void counted as
unmatched). Asserts nothing.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from segbench.config import params_from_dict
from segbench.data.sources import SOURCES
from segbench.data.sources.synthetic import generate
from segbench.errors import DataError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import TINY_PARAMS  # noqa: E402

PALETTE = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (107, 142, 35), (70, 130, 180), (220, 20, 60)]
VOID = (255, 255, 255)
IGNORE = 255


def make_pairs(root: Path, images: int, size: tuple[int, int], quality: int, void: float) -> dict[str, np.ndarray]:
    """Write the pair JPEGs; return each stem's index mask (IGNORE where void)."""
    scenes = root / "scenes"
    generate(scenes, seed=0, sizes={"train": images, "val": 0, "test": 0}, height=size[0], width=size[1], num_classes=6)
    rng = np.random.default_rng(1)
    truth = {}
    for path in sorted((scenes / "train" / "masks").glob("*.png")):
        index = np.asarray(Image.open(path)).copy()
        rows = int(round(size[0] * rng.uniform(0.05, void)))  # a void band at the bottom, like an ego vehicle
        index[size[0] - rows:] = IGNORE
        colour = np.array([*PALETTE, *[VOID] * (256 - len(PALETTE))], np.uint8)[np.where(index == IGNORE, 6, index)]
        photo = np.asarray(Image.open(scenes / "train" / "images" / path.name).convert("RGB"))
        out = root / "pairs" / "train" / f"{path.stem}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate([photo, colour], axis=1)).save(out, quality=quality)
        truth[path.stem] = index
    return truth


def source_params(ignore_colours: bool):
    raw = copy.deepcopy(TINY_PARAMS)
    raw["data"] = {"dataset": "cityscapes_pairs", "cityscapes_pairs": {
        "preset": "custom", "classes": [f"c{i}" for i in range(len(PALETTE))], "palette": [list(c) for c in PALETTE],
        "ignore_colors": [list(VOID)] if ignore_colours else []}}
    return params_from_dict(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))  # a Cityscapes pair half
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the pair images")
    parser.add_argument("--void", type=float, default=0.32, help="largest void share of a mask")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        truth = make_pairs(root, args.images, tuple(args.size), args.quality, args.void)
        source = SOURCES.get("cityscapes_pairs")
        start = time.perf_counter()
        raw = source.read(source_params(True), root / "pairs")
        agree = labelled = void_ok = void = refused = 0
        worst = 0.0
        for sample in raw.splits["train"]:
            try:
                decoded = raw.decode_mask(sample.mask)
            except DataError as exc:  # more than max_unmatched of an image beyond tolerance
                refused += 1
                print(f"refused: {exc}")
                continue
            drawn = truth[sample.mask.stem]
            is_void = drawn == IGNORE
            agree += int((decoded[~is_void] == drawn[~is_void]).sum())
            labelled += int((~is_void).sum())
            void_ok += int((decoded[is_void] == IGNORE).sum())
            void += int(is_void.sum())
            worst = max(worst, float(((decoded == IGNORE) & ~is_void).mean()))
        seconds = time.perf_counter() - start
        plain = source.read(source_params(False), root / "pairs")
        failed = 0
        for sample in plain.splits["train"]:
            try:
                plain.decode_mask(sample.mask)
            except DataError:
                failed += 1

    print(f"{args.images} pairs at {args.size[0]}x{args.size[1]} (mask half), JPEG quality {args.quality}, void up to "
          f"{args.void:.0%} of a mask; default tolerance 60, max_unmatched 0.02; decoded in {seconds:.1f} s")
    print("| measure | value | target |")
    print("|---|---:|---:|")
    print(f"| labelled pixels decoded to their drawn class | {agree / labelled:.4%} | >= 98% |")
    print(f"| void pixels decoded to ignore_index | {void_ok / void:.4%} | >= 99.9% |")
    print(f"| largest share of an image's labelled pixels left unmatched | {worst:.4%} | <= 2% |")
    print(f"| images refused with ignore_colors (unmatched > max_unmatched) | {refused} of {args.images} | 0 |")
    print(f"| images that fail without ignore_colors (void counted as unmatched) | {failed} of {args.images} | |")


if __name__ == "__main__":
    main()
