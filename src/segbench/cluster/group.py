"""One stage command as a process group that ends with the worker that started it.

`python -m segbench.cluster.group SHELL CMD` is started by the worker in a session of its own and
runs `SHELL -c CMD` inside it. PR_SET_PDEATHSIG reaches only a direct child, and a shell may or may
not exec its `-c` command (bash does for a simple command, dash does not), so a stage's real process
could outlive a killed worker and race the retry Dask starts elsewhere. This leader is the direct
child: when its parent (the worker) dies it kills the whole group, the stage's processes included.
A cancel (SIGTERM to the group) reaches every process of it as before.

Standard library only: it starts once per stage and must cost milliseconds.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
_ORPHAN_SIGNAL = signal.SIGHUP  # what the kernel sends this leader when the worker dies
POLL_S = 0.5


def _kill_group(*_args) -> None:
    os.killpg(0, signal.SIGKILL)  # the leader goes with it


def main(argv: list[str]) -> int:
    shell, cmd = argv
    worker = os.getppid()
    signal.signal(_ORPHAN_SIGNAL, _kill_group)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, _ORPHAN_SIGNAL)
    if os.getppid() != worker:  # the worker died before the death signal was armed
        _kill_group()
    proc = subprocess.Popen([shell, "-c", cmd])  # same process group: a cancel reaches it
    while True:
        try:
            code = proc.wait(timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != worker:  # a second guard, should the death signal be lost
                _kill_group()
    if code < 0:  # end as the stage ended: the worker reports "exit -N" for a signal, as for a shell
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
