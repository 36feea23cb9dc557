"""DVC stage `profile@<model>`: python stages/profile_model.py MODEL (not profile.py: that name would shadow the standard library module) (see segbench.cli.cmd_profile)."""
import sys

from segbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["profile", *sys.argv[1:]]))
