"""DVC stage `preprocess`: see segbench.cli.cmd_preprocess."""
import sys

from segbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["preprocess", *sys.argv[1:]]))
