"""DVC stage `train@<model>-<seed>`: python stages/train.py MODEL SEED (see segbench.cli.cmd_train)."""
import sys

from segbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
