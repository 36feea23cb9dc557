"""`segbench generate OUT`: write a synthetic dataset (the embedded default) anywhere."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a synthetic dataset (the embedded default) to a folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="the folder to write (train/, val/, test/ of images and masks)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the shapes and noise (default: 0)")
    parser.add_argument("--train", type=int, default=320, help="images in the train split (default: 320)")
    parser.add_argument("--val", type=int, default=80, help="images in the val split (default: 80)")
    parser.add_argument("--test", type=int, default=80, help="images in the test split (default: 80)")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"),
                        help="image height and width in pixels (default: 64 64)")
    parser.add_argument("--classes", type=int, default=6, help="classes, background included (default: 6)")


def run(args: argparse.Namespace) -> None:
    from ..data.sources.synthetic import generate

    generate(Path(args.out), seed=args.seed, sizes={"train": args.train, "val": args.val, "test": args.test},
             height=args.size[0], width=args.size[1], num_classes=args.classes)
    print(f"wrote synthetic dataset to {args.out}")
