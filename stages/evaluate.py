"""DVC stage `evaluate@<model>-<seed>`: python stages/evaluate.py MODEL SEED (see segbench.cli.cmd_evaluate)."""
import sys

from segbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
