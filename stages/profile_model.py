"""DVC stage `profile@<model>`: python stages/profile_model.py MODEL (see segbench.cli.cmd_profile).
Not profile.py: that name would shadow the standard library's module."""
import sys

from segbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["profile", *sys.argv[1:]]))
