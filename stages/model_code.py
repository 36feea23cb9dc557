"""DVC stage `model_code`: python stages/model_code.py (segbench.commands.model_code)."""
import sys

from segbench.commands import model_code
from segbench.commands.common import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(model_code, sys.argv[1:]))
