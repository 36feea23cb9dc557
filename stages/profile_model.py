"""DVC stage `profile@<model>`: python stages/profile_model.py MODEL (segbench.commands.profile).
Not profile.py: that name would shadow the standard library's module."""
import sys

from segbench.commands import profile
from segbench.commands.common import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(profile, sys.argv[1:]))
