"""DVC stage `environment`: python stages/environment.py (segbench.commands.environment)."""
import sys

from segbench.commands import environment
from segbench.commands.common import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(environment, sys.argv[1:]))
