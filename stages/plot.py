"""DVC stage `plot`: python stages/plot.py (segbench.commands.plot)."""
import sys

from segbench.commands import plot
from segbench.commands.common import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(plot, sys.argv[1:]))
