#!/usr/bin/env python3
"""Start a command and report, in milliseconds, how long until GET URL answers 200.

    python3 scripts/bench/ready.py URL -- COMMAND...

Prints `READY_MS <ms> PID <pid>`; the process keeps running (its output goes to $READY_LOG or
/dev/null). Gives up after 30 s.
"""
import os
import subprocess
import sys
import time
import urllib.request


def main() -> None:
    url = sys.argv[1]
    command = sys.argv[sys.argv.index("--") + 1:]
    log = open(os.environ.get("READY_LOG", os.devnull), "ab")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    while time.perf_counter() - started < 30:
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    ms = (time.perf_counter() - started) * 1000
                    print(f"READY_MS {ms:.1f} PID {process.pid}")
                    return
        except OSError:
            pass
        time.sleep(0.002)
    process.kill()
    sys.exit("server not ready after 30 s")


if __name__ == "__main__":
    main()
