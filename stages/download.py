"""DVC stage `download`: python stages/download.py (segbench.commands.download)."""
import sys

from segbench.commands import download
from segbench.commands.common import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(download, sys.argv[1:]))
