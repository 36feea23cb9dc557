"""DVC stage `aggregate@<model>`: python stages/aggregate.py MODEL (segbench.commands.aggregate)."""
import sys

from segbench.commands import aggregate
from segbench.commands.common import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(aggregate, sys.argv[1:]))
