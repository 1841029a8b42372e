"""A process that looks like a VM to the host's procfs: its vCPU threads named as QEMU names them.

Started by the tests as QEMU would be, e.g.
``bash -c 'exec -a qemu-system-x86_64 python tests/fake_vm.py -name guest=NAME,debug-threads=on --vcpus 2 --busy 0'``
(so argv[0] is ``qemu-system-x86_64`` while the command name stays ``python``). Each
vCPU thread names itself ``CPU <n>/<accel>`` with prctl(PR_SET_NAME) when
``debug-threads=on`` is in ``-name``, as QEMU's qemu_thread_create does; vCPU
``--busy`` spins, the others sleep. Prints the vCPU threads' ids on one line once
they are named, then runs until killed.
"""

from __future__ import annotations

import argparse
import ctypes
import threading
import time

PR_SET_NAME = 15


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-name", default="")
    ap.add_argument("--vcpus", type=int, default=1)
    ap.add_argument("--busy", type=int, default=-1)
    ap.add_argument("--accel", default="TCG")
    args = ap.parse_args()
    named = "debug-threads=on" in args.name
    libc = ctypes.CDLL(None, use_errno=True)
    tids: dict[int, int] = {}
    ready = threading.Semaphore(0)

    def vcpu(n: int) -> None:
        if named and libc.prctl(PR_SET_NAME, f"CPU {n}/{args.accel}".encode(), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")
        tids[n] = threading.get_native_id()
        ready.release()
        if n == args.busy:
            while True:
                pass
        while True:
            time.sleep(3600)

    for n in range(args.vcpus):
        threading.Thread(target=vcpu, args=(n,), daemon=True).start()
    for _ in range(args.vcpus):
        ready.acquire()
    print(" ".join(str(tids[n]) for n in range(args.vcpus)), flush=True)
    threading.Event().wait()  # until SIGTERM


if __name__ == "__main__":
    main()
