"""A process tree that burns known amounts of CPU, for the CPU-accounting tests.

`python cpu_burner.py ROOT_S CHILD_S LIVE_S`: prints "ready", waits for a line on stdin, then has one child
burn CHILD_S and exit (reaped), starts a second child that burns LIVE_S and stays alive, burns ROOT_S itself,
waits until the live child has burnt its share, prints "done" and waits for another line before exiting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def main(root_s: float, child_s: float, live_s: float) -> None:
    if root_s < 0:  # child mode: burn, then wait for stdin to close
        burn(child_s)
        if live_s:
            sys.stdin.read()
        return
    print("ready", flush=True)
    sys.stdin.readline()
    subprocess.run([sys.executable, __file__, "-1", str(child_s), "0"], check=True)
    live = subprocess.Popen([sys.executable, __file__, "-1", str(live_s), "1"], stdin=subprocess.PIPE)
    burn(root_s)
    while _cpu_s(live.pid) < live_s:
        time.sleep(0.01)
    print("done", flush=True)
    sys.stdin.readline()
    assert live.stdin is not None
    live.stdin.close()
    live.wait()


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main(*(float(a) for a in sys.argv[1:4]))
