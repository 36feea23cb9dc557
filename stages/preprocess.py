"""DVC stage `preprocess`: python stages/preprocess.py (segbench.commands.preprocess)."""
import sys

from segbench.commands import preprocess
from segbench.commands.common import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(preprocess, sys.argv[1:]))
