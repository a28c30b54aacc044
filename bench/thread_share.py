"""Does a second thread get this process more of a crowded CPU? Worker threads hashing (GIL
released) beside two busy loops of the same session, 1 then 2 workers, twice each; prints the
cores this process and each busy loop got. Linux shares a core per runnable thread, which is why
a model's generations spread over one-thread decoders on a busy machine (backends/cache.py
CoreShare.spread)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time

BUSY = "import time\nend = time.time() + 60\nwhile time.time() < end:\n    pass\n"
DATA = b"x" * (1 << 20)


def cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def work(stop: threading.Event) -> None:
    while not stop.is_set():
        hashlib.sha256(DATA).digest()


def main(seconds: float = 8.0) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        time.sleep(1)
        for n in (1, 2, 1, 2):
            stop = threading.Event()
            workers = [threading.Thread(target=work, args=(stop,)) for _ in range(n)]
            c0, w0, b0 = time.process_time(), time.perf_counter(), [cpu_s(p.pid) for p in procs]
            for t in workers:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in workers:
                t.join()
            wall = time.perf_counter() - w0
            loops = ", ".join(f"{(cpu_s(p.pid) - b) / wall:.3f}" for p, b in zip(procs, b0, strict=True))
            print(f"{n} worker thread(s): this process {(time.process_time() - c0) / wall:.3f} cores, "
                  f"busy loops {loops}, load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
