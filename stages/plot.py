"""DVC stage `plot`: see segbench.cli.cmd_plot."""
import sys

from segbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["plot", *sys.argv[1:]]))
