"""DVC stage `download`: see segbench.cli.cmd_download."""
import sys

from segbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["download", *sys.argv[1:]]))
