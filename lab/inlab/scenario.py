"""What a scenario is, how scenario files are found and checked, and how an outcome is judged.

A scenario is one way a TCP conversation dies, told as a Python file under
``lab/scenarios/`` with these module-level names::

    NAME       "frozen-process"               the file's own name, with '-' for '_'
    TITLE      "Frozen process"
    HOWTO      "When Sockets Die"             the HOWTO section it illustrates (one of HOWTO_SECTIONS)
    WIRE       "..."                          what happens on the wire, in plain words
    INJECTION  "..."                          how the lab makes it happen
    PATH       "direct" | "proxied"           client → server, or through Toxiproxy
    EXPECT     {"robust": Expect(...), "naive": Expect(...)}   the oracle per implementation
    REMEMBER   "..."                          one line for the class to take home
    LOOK_FOR   "..."                          (optional) what to look for in the packet capture
    REACH_BYTES 2526                          (optional) bytes a graded program's workload must send
                                              for the fault to matter; fewer: "did not reach the fault"
    def run(ctx): ...                         drives the subjects and the fault (see lab.inlab.runner;
                                              what ctx offers: lab.inlab.context.ScenarioContext)

:func:`load` imports one file and checks every field, naming the field and
the problem (``scenarios/x.py: EXPECT['robust'].within must be a number of
seconds > 0; got -1``); a file whose import raises is a :class:`ScenarioError`
too, in one line. :func:`discover` loads them all (the first broken file
raises), :func:`survey` loads what it can and returns the broken ones beside
them; an unknown name raises :class:`UnknownScenario` listing the known ones.

The oracle for one implementation is an :class:`Expect`; the runner records an
:class:`Outcome` per implementation and :func:`judge` compares the two into
:class:`Check` lines. Scenarios add their own checks (measured RTT, bytes before
a cut, exactly-once counts) and their *fidelity* checks: proof that the fault
really happened. A scenario passes only if every fidelity check and every
oracle check holds, so a fault that silently did nothing fails it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from lab.inlab.timeline import bound_start
from lab.toolerrors import UsageError

if TYPE_CHECKING:
    from lab.inlab.context import ScenarioContext

HOWTO_SECTIONS = ("Creating a Socket", "Using a Socket", "Binary Data", "Disconnecting", "When Sockets Die",
                  "Non-blocking Sockets", "Performance")
PATHS = ("direct", "proxied")
Status = Literal["completed", "error", "blocked"]
"""What one implementation did: "completed" (every exchange returned), "error" (it raised),
"blocked" (still inside a call when the watchdog fired). Expect says which one it must be."""
STATUSES: tuple[Status, ...] = get_args(Status)
BoundName = Literal["connect", "frozen_peer", "stuck_reply", "send_stall", "idle_peer_gone", "unacked_data"]
"""The keys of lab.sockets.robust.RobustConfig.bounds(): the detection bounds its settings imply."""
REQUIRED = ("NAME", "TITLE", "HOWTO", "WIRE", "INJECTION", "PATH", "EXPECT", "REMEMBER", "run")
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")


class ScenarioError(UsageError):
    """A scenario file is malformed; the message names the file, the field and the problem."""


class UnknownScenario(UsageError):
    """No scenario has that name; the message lists the known ones."""


class Bound(float):
    """Seconds that say where they come from: a float wherever the number is read.

    ``key`` names the RobustConfig().bounds() entry it derives from (None: no setting
    implies it, see :func:`fixed`), ``margin`` the seconds added to that bound.
    tests/unit/test_scenario_bounds.py checks every robust ``within`` against both.
    """

    key: BoundName | None
    margin: float

    def __new__(cls, seconds: float, key: BoundName | None = None, margin: float = 0.0) -> "Bound":
        self = super().__new__(cls, seconds)
        self.key, self.margin = key, margin
        return self


def bound(key: BoundName, margin: float = 0.0) -> Bound:
    """A robust ``within`` derived from the default RobustConfig: ``bounds()[key]`` plus ``margin`` seconds.

    ``Expect("error", ("ConnectTimeout",), within=bound("connect", 0.5))`` is 3.5 s with the
    defaults and moves with them; the margin is what the scenario adds on top (and says why in ``note``).
    """
    from lab.sockets.robust import RobustConfig

    value = RobustConfig().bounds()[key]
    if value is None:
        raise ScenarioError(f"RobustConfig().bounds()[{key!r}] is off (None): no time bound to derive from it")
    return Bound(value + margin, key, margin)


def fixed(seconds: float) -> Bound:
    """A robust ``within`` that no RobustConfig setting implies (a FIN or RST the kernel delivers at once)."""
    return Bound(seconds)


@dataclasses.dataclass(frozen=True)
class Expect:
    """What one implementation must do in a scenario.

    status   "completed" (every exchange returned intact), "error" (it raised one of
             ``errors``), or "blocked" (still inside a call when the watchdog fired).
    errors   accepted exception class names, e.g. ("PeerUnresponsive",) or ("RuntimeError",).
    within   seconds from the fault to the error (or to completion), when bounded. A robust
             one is written ``bound("connect", 0.5)`` (derived from RobustConfig().bounds())
             or ``fixed(0.5)`` (no setting implies it), so the number is written once.
    detail   facts the error must carry, e.g. {"detected_by": "heartbeat"}; a tuple value
             lists the accepted ones.
    corrupt  True when the implementation is expected to return wrong data without
             an error (the classic mistakes); False asserts nothing corrupt came back.
    note     the bound's origin in words ("dead_after 3 s + heartbeat 1 s").
    """

    status: Status
    errors: tuple[str, ...] = ()
    within: float | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    corrupt: bool = False
    note: str = ""

    def validate(self, where: str) -> None:
        if self.status not in STATUSES:
            raise ScenarioError(f"{where}.status must be one of {', '.join(STATUSES)}; got {self.status!r}")
        if not isinstance(self.errors, tuple) or not all(isinstance(e, str) and e for e in self.errors):
            raise ScenarioError(f"{where}.errors must be a tuple of exception class names; got {self.errors!r}")
        if self.status == "error" and not self.errors:
            raise ScenarioError(f"{where}.errors must name at least one exception when status is 'error'")
        if self.status != "error" and self.errors:
            raise ScenarioError(f"{where}.errors is only meaningful with status 'error'; got {self.errors!r}")
        if self.within is not None and (isinstance(self.within, bool) or not isinstance(self.within, (int, float))
                                        or self.within <= 0):
            raise ScenarioError(f"{where}.within must be a number of seconds > 0 or None; got {self.within!r}")
        if not isinstance(self.detail, dict):
            raise ScenarioError(f"{where}.detail must be a dict of facts; got {self.detail!r}")


@dataclasses.dataclass
class Outcome:
    """What one implementation actually did."""

    impl: str
    status: Status = "completed"
    error: str | None = None
    errno_name: str | None = None
    message: str = ""
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    ended_at: float | None = None        # seconds since the scenario started
    # When the lab let this implementation past the fault point (its ctx.ready() returned): its time
    # bound counts from here or from the fault being in place, whichever is later (timeline.bound_start).
    released_at: float | None = None
    exchanges_ok: int = 0
    corrupt: int = 0
    measurements: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    howto: str
    wire: str
    injection: str
    path: str
    expect: dict[str, Expect]
    remember: str
    run: Callable[[ScenarioContext], None]
    source: Path
    watchdog: float | None = None
    look_for: str = ""
    reach_bytes: int | None = None
    module: Any = None
    # Why graded code cannot be run here though the scenario judges naive (NOT_GRADABLE): "" = it can.
    not_gradable: str = ""

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "howto": self.howto, "path": self.path,
                "wire": self.wire, "injection": self.injection, "remember": self.remember,
                "look_for": self.look_for, "watchdog": self.watchdog, "reach_bytes": self.reach_bytes,
                "expect": {k: dataclasses.asdict(v) for k, v in self.expect.items()}}


def _text(module: Any, field: str, where: str) -> str:
    value = getattr(module, field)
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(f"{where}: {field} must be a non-empty string; got {value!r}")
    return " ".join(value.split()) if field in ("TITLE",) else value.strip()


def load(path: Path, *, impls: tuple[str, ...] | None = None) -> Scenario:
    """Import one scenario file and check every field."""
    path = Path(path)
    where = str(path)
    spec = importlib.util.spec_from_file_location(f"lab_scenario_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"{where}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ScenarioError(f"{where}: syntax error at line {exc.lineno}: {exc.msg}") from exc
    except Exception as exc:   # the file's own code raised: bad input, told in one line, not a traceback
        raise ScenarioError(f"{where}: importing it raised {_one_line(exc)}{_line_in(exc, path)}") from exc
    missing = [f for f in REQUIRED if not hasattr(module, f)]
    if missing:
        raise ScenarioError(f"{where}: missing {', '.join(missing)}; a scenario defines {', '.join(REQUIRED)}")
    name = module.NAME
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ScenarioError(f"{where}: NAME must be lowercase words joined by '-'; got {name!r}")
    if name.replace("-", "_") != path.stem:
        raise ScenarioError(f"{where}: NAME {name!r} does not match the file name (expected "
                            f"{path.stem.replace('_', '-')!r})")
    howto = _text(module, "HOWTO", where)
    if howto not in HOWTO_SECTIONS:
        raise ScenarioError(f"{where}: HOWTO must name a section of the HOWTO, one of "
                            f"{', '.join(HOWTO_SECTIONS)}; got {howto!r}")
    if module.PATH not in PATHS:
        raise ScenarioError(f"{where}: PATH must be one of {', '.join(PATHS)}; got {module.PATH!r}")
    expect = module.EXPECT
    if not isinstance(expect, dict) or not expect:
        raise ScenarioError(f"{where}: EXPECT must be a non-empty dict of implementation name → Expect")
    known = impls
    if known is None:
        from lab.inlab.subjects import IMPLS
        from lab.server.binding import BINDERS

        # Client implementations, and the server code a scenario may judge instead (the binders).
        known = (*IMPLS, *BINDERS)
    for impl, oracle in expect.items():
        if impl not in known:
            raise ScenarioError(f"{where}: EXPECT names unknown implementation {impl!r}; accepted: "
                                f"{', '.join(known)}")
        if not isinstance(oracle, Expect):
            raise ScenarioError(f"{where}: EXPECT[{impl!r}] must be an Expect; got {type(oracle).__name__}")
        oracle.validate(f"{where}: EXPECT[{impl!r}]")
    if not callable(module.run):
        raise ScenarioError(f"{where}: run must be a function run(ctx)")
    watchdog = getattr(module, "WATCHDOG", None)
    if watchdog is not None and (isinstance(watchdog, bool) or not isinstance(watchdog, (int, float))
                                 or watchdog <= 0):
        raise ScenarioError(f"{where}: WATCHDOG must be a number of seconds > 0; got {watchdog!r}")
    look_for = _text(module, "LOOK_FOR", where) if hasattr(module, "LOOK_FOR") else ""
    reach = getattr(module, "REACH_BYTES", None)
    if reach is not None and (isinstance(reach, bool) or not isinstance(reach, int) or reach <= 0):
        raise ScenarioError(f"{where}: REACH_BYTES must be a whole number of bytes > 0; got {reach!r}")
    not_gradable = _text(module, "NOT_GRADABLE", where) if hasattr(module, "NOT_GRADABLE") else ""
    return Scenario(name=name, title=_text(module, "TITLE", where), howto=howto, wire=_text(module, "WIRE", where),
                    injection=_text(module, "INJECTION", where), path=module.PATH, expect=dict(expect),
                    remember=_text(module, "REMEMBER", where), run=module.run, source=path,
                    watchdog=watchdog, look_for=look_for, reach_bytes=reach, module=module,
                    not_gradable=" ".join(not_gradable.split()))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _line_in(exc: BaseException, path: Path) -> str:
    """`` (line N)``: the deepest line of ``path`` in the exception's traceback, if it is there."""
    import traceback

    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f" (line {lines[-1]})" if lines else ""


def scenarios_dir() -> Path:
    """``lab/scenarios/``: shipped inside the package, so an installed ``lab`` finds them too."""
    return Path(__file__).resolve().parent.parent / "scenarios"


def discover(directory: Path | None = None) -> dict[str, Scenario]:
    """Every scenario file, loaded; the first broken one raises its :class:`ScenarioError`."""
    found, broken = survey(directory)
    for error in broken.values():
        raise error
    return found


def survey(directory: Path | None = None) -> tuple[dict[str, Scenario], dict[str, ScenarioError]]:
    """Every scenario file: those that load, and those that do not (name from the file → its error).

    For ``lab list`` and ``lab run --all``, where one broken file must not hide the others.
    """
    directory = directory or scenarios_dir()
    found: dict[str, Scenario] = {}
    broken: dict[str, ScenarioError] = {}
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            scenario = load(path)
        except ScenarioError as exc:
            broken[path.stem.replace("_", "-")] = exc
            continue
        found[scenario.name] = scenario
    return found, broken


def get(name: str, directory: Path | None = None) -> Scenario:
    directory = directory or scenarios_dir()
    path = directory / f"{name.replace('-', '_')}.py"
    if not _NAME_RE.match(name) or not path.exists():
        known = sorted(p.stem.replace("_", "-") for p in directory.glob("*.py") if not p.name.startswith("_"))
        raise UnknownScenario(f"no scenario named {name!r}; known scenarios: {', '.join(known)}")
    return load(path)


def load_source(name: str, source: bytes, directory: Path) -> Scenario:
    """A scenario file handed over as bytes, written to ``directory`` under its own name, then loaded.

    How ``lab run path/to/x.py`` reaches the in-lab runner: a file outside the checkout is not in
    the image, and the container's filesystem is read-only but for a tmpfs /tmp.
    """
    if not _NAME_RE.match(name):   # it becomes a file name: nothing like '../x'
        raise ScenarioError(f"scenario name {name!r} is not accepted: lowercase words joined by '-'")
    path = Path(directory) / f"{name.replace('-', '_')}.py"
    path.write_bytes(source)
    return load(path)


def judge(expect: Expect, outcome: Outcome, *, fault_at: float | None) -> list[Check]:
    """The standard oracle checks for one implementation.

    ``fault_at`` is when the fault was in place (timeline.fault_in_place), not when it was asked
    for: the time bound never counts the lab's own time to inject it (timeline.bound_start).
    """
    checks = []
    got = outcome.status if outcome.status != "error" else f"error {outcome.error}"
    want = expect.status if expect.status != "error" else f"error {' or '.join(expect.errors)}"
    status_ok = outcome.status == expect.status and (expect.status != "error" or outcome.error in expect.errors)
    checks.append(Check("outcome", status_ok, f"expected {want}; got {got}"
                        + (f" ({outcome.message})" if outcome.message else "")))
    for key, value in expect.detail.items():
        actual = outcome.facts.get(key)
        # A tuple lists the accepted values ("heartbeat" or "user-timeout": whichever fires first).
        ok = actual in value if isinstance(value, tuple) else actual == value
        want = " or ".join(map(repr, value)) if isinstance(value, tuple) else repr(value)
        checks.append(Check(f"{key}", ok, f"expected {key}={want}; got {actual!r}"))
    if expect.within is not None and expect.status != "blocked":
        if outcome.ended_at is None:
            checks.append(Check("time bound", False, "no end time was recorded"))
        else:
            start = bound_start(fault_at, outcome.released_at)
            took = outcome.ended_at - start
            checks.append(Check("time bound", 0 <= took <= expect.within,
                                f"{took:.3f} s after the fault; bound {expect.within:g} s"
                                + (f" ({expect.note})" if expect.note else "")))
    if expect.corrupt:
        checks.append(Check("corrupt data", outcome.corrupt > 0,
                            f"expected wrong data returned without an error; {outcome.corrupt} corrupt replies"))
    else:
        checks.append(Check("no corrupt data", outcome.corrupt == 0,
                            f"{outcome.corrupt} replies differed from what was sent"))
    return checks


def reload_module(name: str) -> None:
    """Forget a loaded scenario module (tests load edited copies under the same name)."""
    sys.modules.pop(f"lab_scenario_{name}", None)
