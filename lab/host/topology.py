"""One running copy of the lab: a compose project, as a plain context manager.

:class:`Lab` knows the project's name and how to talk to it (``docker compose``
with that name, commands inside its containers, the host port of the
Toxiproxy API). It never decides which images to use; :mod:`lab.host.engine` did
that and wrote ``.env``. The CLI and the pytest fixtures are thin layers over
it, and its command runner is passed in, so its logic is unit-tested without
Docker::

    with Lab(repo, project="socket-lab-demo") as lab:      # up --wait ... down -v
        out = lab.exec("client", ["python3", "-m", "lab.inlab.driver", "--count", "3"])
        api = lab.toxiproxy_url()

Everything a project creates carries compose's own project label and the
lab's ``org.socket-lab.lab`` label; :func:`leftovers` and :func:`sweep` find
and remove them by label, which is how a run cleans up after an earlier one
that was killed before it could.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lab.addresses import LOOPBACK, TOXIPROXY_API_PORT, TOXIPROXY_HOST
from lab.host.engine import LABEL, EngineError, Result, Runner

DEFAULT_PROJECT = "socket-lab"
# The services `up` starts (compose.yaml, less the ones behind a profile); a unit test compares them.
SERVICES = ("toxiproxy", "server", "router", "router-agent", "server-agent", "server2", "server2-agent", "client",
            "client-agent")
# The services with a healthcheck: the client-agent's alone, which asks the other agents for their
# namespaces' health and knocks on Toxiproxy's API. Every check is a `docker exec`, about 80 ms of
# CPU: one per service every 2 s was a third of a CPU per idle lab, which several labs at once
# cannot spare. A unit test compares this with compose.yaml.
HEALTHCHECKED = ("client-agent",)
ONE_OFF = "com.docker.compose.oneoff=True"  # the label of a `compose run` container
_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def unique_project(prefix: str = "socket-lab-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def check_project_name(name: str) -> str:
    if not _PROJECT_RE.match(name):
        raise ValueError(f"project name {name!r} is not accepted: use lowercase letters, digits, '-' and '_', "
                         "starting with a letter or digit")
    return name


class Lab:
    def __init__(self, repo: Path, project: str = DEFAULT_PROJECT, *, runner: Runner | None = None,
                 env: Mapping[str, str] | None = None, up_timeout: float = 300.0) -> None:
        self.repo = Path(repo)
        self.project = check_project_name(project)
        self.runner = runner or Runner()
        self.env = dict(env or {})
        self.up_timeout = up_timeout

    # Compose -----------------------------------------------------------------
    def compose_argv(self, *args: str) -> list[str]:
        return ["docker", "compose", "--project-directory", str(self.repo), "-f",
                str(self.repo / "compose.yaml"), "-p", self.project, *args]

    def compose(self, *args: str, timeout: float = 120.0, check: bool = True, stdin: bytes | None = None) -> Result:
        res = self.runner.run(self.compose_argv(*args), timeout=timeout, env=self.env or None, cwd=self.repo,
                              stdin=stdin)
        if check and not res.ok:
            detail = (res.stderr or res.stdout).strip()[-2000:]
            raise EngineError(f"docker compose {' '.join(args)} failed (exit {res.returncode}):\n{detail}")
        return res

    def up(self) -> None:
        """Build what is missing, start everything, and wait until every healthcheck passes."""
        self.compose("up", "--detach", "--build", "--wait", "--wait-timeout", str(int(self.up_timeout)),
                     timeout=self.up_timeout + 600)

    def down(self) -> None:
        # `compose down` leaves `compose run` containers (the sandbox's, lab/host/sandbox.py) running,
        # even with their profile: remove those first, by the project's label.
        one_offs = self.runner.run(["docker", "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project="
                                    f"{self.project}", "--filter", f"label={ONE_OFF}"], timeout=30)
        if one_offs.ok and one_offs.stdout.split():
            self.runner.run(["docker", "rm", "-f", "-v", *one_offs.stdout.split()], timeout=120)
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", timeout=120, check=False)

    def resources(self) -> dict[str, list[str]]:
        """The project's containers, networks and volumes (what :meth:`down` would remove)."""
        return leftovers(self.runner, self.project, labelled=False)

    def __enter__(self) -> "Lab":
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # Inside the lab ----------------------------------------------------------
    def exec(self, service: str, argv: Sequence[str], *, timeout: float = 60.0, user: str | None = None,
             env: Mapping[str, str] | None = None, stdin: bytes | None = None,
             on_line: Callable[[str], None] | None = None) -> Result:
        """Run a command in a running service container; its exit code is returned, not raised.

        ``stdin`` is fed to the command (how files reach a container without a bind mount).
        ``on_line`` is given each line of its stdout as soon as it is printed (the whole of
        it is in the result too).
        """
        args = ["exec", "-T"]
        if user:
            args += ["--user", user]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        if on_line is not None:
            return self.runner.stream(self.compose_argv(*args, service, *argv), timeout=timeout, on_line=on_line,
                                      env=self.env or None, stdin=stdin, cwd=self.repo)
        return self.compose(*args, service, *argv, timeout=timeout, check=False, stdin=stdin)

    def port(self, service: str, container_port: int) -> int:
        res = self.compose("port", service, str(container_port), timeout=30)
        host_port = res.stdout.strip().rsplit(":", 1)[-1]
        if not host_port.isdigit():
            raise EngineError(f"compose port {service} {container_port} gave {res.stdout.strip()!r}")
        return int(host_port)

    def toxiproxy_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port(TOXIPROXY_HOST, TOXIPROXY_API_PORT)}"

    def sick(self, expected: int = len(SERVICES)) -> tuple[list[str], bool]:
        """What is wrong with the lab (empty when all is fine), and whether something is not running at all."""
        rows = [r for r in self.status() if ONE_OFF not in str(r.get("Labels", ""))]  # a sandbox is no service
        problems = [f"{r.get('Service')}: {r.get('State')}/{r.get('Health') or 'no healthcheck'}" for r in rows
                    if r.get("State") != "running"
                    or (r.get("Service") in HEALTHCHECKED and r.get("Health") != "healthy")]
        down = len(rows) < expected or any(r.get("State") != "running" for r in rows)
        if len(rows) < expected:
            problems.append(f"{len(rows)} of {expected} services exist")
        return problems, down

    def wait_healthy(self, timeout: float = 60.0, *, clock=None, sleep=None) -> None:  # type: ignore[no-untyped-def]
        """Wait until every service is running and healthy; bring back stopped ones; fail naming the sick.

        Healthy-again takes a few seconds after some faults (Docker reports a paused container
        unhealthy at once, and healthy only at its next check after unpause), and ``up --wait``
        fails at once on an unhealthy container instead of waiting, hence this loop.
        """
        import time

        clock = clock or time.monotonic
        sleep = sleep or time.sleep
        deadline = clock() + timeout
        while True:
            problems, down = self.sick()
            if not problems:
                return
            if down:
                self.compose("up", "--detach", "--no-recreate", timeout=300, check=False)
            if clock() >= deadline:
                raise EngineError(f"the lab is not healthy after {timeout:g} s: {'; '.join(problems)}")
            sleep(0.5)

    def status(self) -> list[dict[str, object]]:
        res = self.compose("ps", "--all", "--format", "json", timeout=30)
        return _parse_json_lines(res.stdout)


def _parse_json_lines(text: str) -> list[dict[str, object]]:
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def leftovers(runner: Runner, project: str | None = None, *, labelled: bool = True) -> dict[str, list[str]]:
    """Containers, networks and volumes carrying the lab's label (of one project, or all).

    ``labelled=False`` (with a project) finds everything of that compose project, labelled or not.
    """
    found: dict[str, list[str]] = {}
    filters = ["--filter", f"label={LABEL}"] if labelled else []
    if project:
        filters += ["--filter", f"label=com.docker.compose.project={project}"]
    for kind, argv in (("containers", ["docker", "ps", "-a", "--format", "{{.Names}}"]),
                       ("networks", ["docker", "network", "ls", "--format", "{{.Name}}"]),
                       ("volumes", ["docker", "volume", "ls", "--format", "{{.Name}}"])):
        res = runner.run([*argv, *filters], timeout=30)
        if not res.ok:
            raise EngineError(f"{' '.join(argv)} failed: {res.stderr.strip()}")
        found[kind] = [line for line in res.stdout.split() if line]
    return found


def sweep(runner: Runner, project: str | None = None) -> dict[str, list[str]]:
    """Remove everything :func:`leftovers` finds; returns what was removed."""
    found = leftovers(runner, project)
    if found["containers"]:
        runner.run(["docker", "rm", "-f", "-v", *found["containers"]], timeout=120)
    if found["networks"]:
        runner.run(["docker", "network", "rm", *found["networks"]], timeout=60)
    if found["volumes"]:
        runner.run(["docker", "volume", "rm", "-f", *found["volumes"]], timeout=60)
    return found


def repo_root() -> Path:
    """The checkout this package lives in (the lab needs compose.yaml next to it)."""
    env = os.environ.get("LAB_REPO")
    root = Path(env) if env else Path(__file__).resolve().parents[2]
    if not (root / "compose.yaml").exists():
        raise EngineError(f"no compose.yaml in {root}; run the lab from its checkout or set LAB_REPO")
    return root
