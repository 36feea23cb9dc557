"""DVC stage `train@<model>-<seed>`: python stages/train.py MODEL SEED (segbench.commands.train)."""
import sys

from segbench.commands import train
from segbench.commands.common import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(train, sys.argv[1:]))
