"""A tiny PID 1 for the lab's containers: runs child programs, reaps orphans, obeys signals.

Why not make the server PID 1 itself: when PID 1 dies the container stops,
and with it the network namespace that the fault agent shares. Killing the
server process (a crash scenario) must leave its container, its address and
the agent alive, exactly as a crashed daemon leaves its host up. So the
supervisor owns the container's life and the server is its child::

    python3 -m lab.server.supervisor -- python3 -m lab.server --port 7000 \\
                              -- python3 -m lab.server --impl selectors --port 7100

Each ``--``-separated command is one child. A child that exits is started
again after ``--restart-delay`` seconds, so "kill the server" becomes "the
server restarts", like a service manager would do. Signals to the supervisor:

    SIGTERM, SIGINT  stop the children (SIGTERM, then SIGKILL after 5 s) and exit 0
    SIGUSR1          stop the children and keep them stopped (nothing listens: "refused")
    SIGUSR2          start them again

With no command it only waits and reaps, which is what the client container
needs (commands arrive through ``docker exec``; their orphans land here).
One JSON line per event goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time


def _emit(event: str, **facts: object) -> None:
    print(json.dumps({"event": event, "t": round(time.monotonic(), 3), **facts}), flush=True)


def _split_commands(argv: list[str]) -> list[list[str]]:
    commands: list[list[str]] = []
    for token in argv:
        if token == "--":
            commands.append([])
        elif commands:
            commands[-1].append(token)
    return [c for c in commands if c]


class Supervisor:
    def __init__(self, commands: list[list[str]], restart_delay: float) -> None:
        self.commands = commands
        self.restart_delay = restart_delay
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.exited_at: dict[int, float] = {}
        self.stopping = False
        self.held = False

    def start(self, index: int) -> None:
        proc = subprocess.Popen(self.commands[index])
        self.children[index] = proc
        _emit("started", index=index, pid=proc.pid, argv=self.commands[index])

    def stop_children(self, grace: float = 5.0) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace
        for index, proc in list(self.children.items()):
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            _emit("stopped", index=index, pid=proc.pid, returncode=proc.returncode)
        self.children.clear()

    def on_signal(self, signum: int, _frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        elif signum == signal.SIGUSR1:
            self.held = True
            _emit("hold")
            self.stop_children()
        elif signum == signal.SIGUSR2:
            self.held = False
            _emit("release")

    def reap_orphans(self) -> None:
        # As PID 1 we inherit every orphan (docker exec'd commands that lost their parent).
        mine = {p.pid for p in self.children.values()}
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in mine:
                # We reaped one of our own children: let Popen see it as gone.
                for proc in self.children.values():
                    if proc.pid == pid and proc.returncode is None:
                        proc.returncode = -1

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, self.on_signal)
        for index in range(len(self.commands)):
            self.start(index)
        while not self.stopping:
            for index in range(len(self.commands)):
                proc = self.children.get(index)
                if proc is not None and proc.poll() is not None:
                    _emit("exited", index=index, pid=proc.pid, returncode=proc.returncode)
                    del self.children[index]
                    self.exited_at[index] = time.monotonic()
                if index not in self.children and not self.held:
                    if time.monotonic() - self.exited_at.get(index, 0.0) >= self.restart_delay:
                        self.start(index)
            self.reap_orphans()
            time.sleep(0.05)
        self.stop_children()
        _emit("bye")
        return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    head = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m lab.server.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--restart-delay", type=float, default=0.5,
                        help="seconds between a child's exit and its restart (default 0.5)")
    opts = parser.parse_args(head)
    if opts.restart_delay < 0:
        parser.error(f"--restart-delay must be >= 0 seconds; got {opts.restart_delay}")
    return Supervisor(_split_commands(argv), opts.restart_delay).run()


if __name__ == "__main__":
    sys.exit(main())
