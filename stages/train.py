"""DVC stage `train@<model>`: python stages/train.py MODEL (see segbench.cli.cmd_train)."""
import sys

from segbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
