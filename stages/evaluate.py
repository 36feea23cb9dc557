"""DVC stage `evaluate@<model>-<seed>`: python stages/evaluate.py MODEL SEED (segbench.commands.evaluate)."""
import sys

from segbench.commands import evaluate
from segbench.commands.common import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(evaluate, sys.argv[1:]))
