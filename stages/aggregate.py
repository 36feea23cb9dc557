"""DVC stage `aggregate@<model>`: python stages/aggregate.py MODEL (see segbench.cli.cmd_aggregate)."""
import sys

from segbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["aggregate", *sys.argv[1:]]))
