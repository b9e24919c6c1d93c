"""Seconds from starting `depthprune-tui` in a pseudo-terminal to its first paint (the Setup title).

    .venv/bin/python benchmarks/tui_first_paint.py [--repeats 3]

Each repeat starts a fresh process in a temporary runs directory at 80×24, reads the terminal
output until "New run" appears, then quits it with ctrl+q. Prints every time and the median.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def first_paint(timeout: float = 60.0) -> float:
    tui = Path(sys.executable).with_name("depthprune-tui")
    with tempfile.TemporaryDirectory() as runs:
        main, child = pty.openpty()
        os.set_blocking(main, False)
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
        start = time.perf_counter()
        process = subprocess.Popen(
            [str(tui), "--runs-dir", runs], stdin=child, stdout=child, stderr=child, env=env, start_new_session=True
        )
        os.close(child)
        seen = b""
        try:
            while b"New run" not in seen.replace(b"\x1b", b""):
                if time.perf_counter() - start > timeout:
                    raise SystemExit(f"no first paint within {timeout} s")
                ready, _, _ = select.select([main], [], [], 0.05)
                if ready:
                    try:
                        seen += os.read(main, 65536)
                    except OSError:
                        break
            elapsed = time.perf_counter() - start
            os.write(main, b"\x11")  # ctrl+q
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
            os.close(main)
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times = [first_paint() for _ in range(args.repeats)]
    print(" ".join(f"{t:.2f}" for t in times), f"median {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
