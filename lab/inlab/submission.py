"""Someone's own socket code, as the lab loads it: the contract's constants and the in-lab loader.

A *submission* is one Python file defining a HOWTO-style ``MySocket`` class
(see docs/grading.md). The host (:mod:`lab.grading.card`) checks it without running it,
copies it into the client container as ``/tmp/submissions/<name>.py``, and asks
the runner for the implementation ``file:/tmp/submissions/<name>.py``. Inside the
lab this module turns that name into a class, and nothing else::

    loaded = load("file:/tmp/submissions/mine-1a2b3c4d.py")   # bounded import
    obj = loaded.cls()                                          # MySocket()
    loaded.framing, loaded.msglen                               # "fixed", 1024

A file that sets ``MSGLEN`` and no ``FRAMING`` (the HOWTO's class as written) is
fixed-length; :func:`read_constants` is the one rule, for the host's static check
and for this loader.

The import runs in a daemon thread with a deadline, because module-level code is
the submitter's and may never return; a load that fails (an exception, a missing
method, an import that does not finish) raises :class:`SubmissionLoadFailed`,
which carries what the runner records as the submission's outcome. Each file is
imported once per process, into a fresh module of its own.

Runs inside the containers: standard library (and :mod:`lab.sockets.framing`) only.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import re
import socket
import stat
import sys
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.sockets.framing import HEADER_SIZE, SEQ
from lab.toolerrors import CheckFailed, UsageError

if TYPE_CHECKING:
    from lab.inlab.scenario import Status

SUBMISSIONS_DIR = "/tmp/submissions"
IMPL_PREFIX = "file:"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_IMPL_RE = re.compile(rf"^{re.escape(IMPL_PREFIX)}{re.escape(SUBMISSIONS_DIR)}/({NAME_PATTERN})\.py$")
FRAMINGS = ("fixed", "length-prefixed")
MIN_MSGLEN = HEADER_SIZE + SEQ.size
"""The smallest fixed message: a DATA frame's 5-byte header and its 8-byte sequence number."""
MAX_MSGLEN = 1 << 20
CLASS_NAME = "MySocket"
REQUIRED_METHODS: dict[str, tuple[str, ...]] = {"connect": ("host", "port"), "mysend": ("msg",), "myreceive": ()}
OPTIONAL_METHODS = ("close",)
IMPORT_TIMEOUT_S = 5.0
IMPLIED_FIXED_NOTE = "FRAMING not set: graded as fixed-length MSGLEN messages, as the HOWTO's class is written"
CLOSE_TIMEOUT_S = 2.0


class SubmissionError(UsageError):
    """An implementation name that is not an accepted submission path; the message says what is accepted."""


class SubmissionLoadFailed(CheckFailed):
    """The submission could not be made ready in the lab; its fields are the outcome to record.

    status   "error" (it raised, or broke the contract) or "blocked" (the import never finished)
    error    the exception's class name, or "ContractError" / "ImportTimeout"
    """

    def __init__(self, status: Status, error: str, message: str) -> None:
        super().__init__(message)
        self.status: Status = status
        self.error, self.message = error, message


@dataclasses.dataclass(frozen=True)
class Loaded:
    impl: str
    path: Path
    cls: type
    framing: str
    msglen: int | None
    note: str | None = None                # set when the framing was inferred (MSGLEN and no FRAMING)


def is_submission(impl: str) -> bool:
    return impl.startswith(IMPL_PREFIX)


def parse_impl(impl: str) -> Path:
    """The file a ``file:`` implementation names, after checking the name strictly."""
    if not _IMPL_RE.match(impl):
        raise SubmissionError(f"implementation {impl!r} is not an accepted submission: use "
                              f"{IMPL_PREFIX}{SUBMISSIONS_DIR}/NAME.py, where NAME is 1 to 64 letters, digits, "
                              "'_' or '-' starting with a letter or digit (no other directory, no '..')")
    return Path(impl[len(IMPL_PREFIX):])


def validate_constants(framing: Any, msglen: Any, where: str) -> int | None:
    """Check FRAMING and MSGLEN (shared by the host's static check and the in-lab one); returns MSGLEN."""
    if framing not in FRAMINGS:
        raise SubmissionError(f"{where}: FRAMING must be one of {', '.join(map(repr, FRAMINGS))}; got {framing!r}")
    if framing != "fixed":
        return None
    if isinstance(msglen, bool) or not isinstance(msglen, int) or not MIN_MSGLEN <= msglen <= MAX_MSGLEN:
        raise SubmissionError(f"{where}: FRAMING 'fixed' needs MSGLEN, an int from {MIN_MSGLEN} (a frame's header "
                              f"and sequence number) to {MAX_MSGLEN}; got {msglen!r}")
    return msglen


@dataclasses.dataclass(frozen=True)
class Constants:
    """What a submission's FRAMING and MSGLEN mean, and a note when the lab had to infer the framing."""

    framing: str
    msglen: int | None
    note: str | None = None


def read_constants(found: Mapping[str, Any], where: str) -> Constants:
    """FRAMING and MSGLEN from the names a file defines (only those it defines are in ``found``).

    The one rule for the host's static check and the in-lab loader alike: ``FRAMING``
    is checked as given; a file with ``MSGLEN`` and no ``FRAMING`` is the HOWTO's class
    as written, graded as fixed-length with a note saying so; a file with neither is refused.
    """
    if "FRAMING" in found:
        return Constants(found["FRAMING"], validate_constants(found["FRAMING"], found.get("MSGLEN"), where))
    if "MSGLEN" not in found:
        raise SubmissionError(f"{where}: no module-level FRAMING; declare FRAMING = \"fixed\" (with MSGLEN = "
                              f"<int >= {MIN_MSGLEN}>) or FRAMING = \"length-prefixed\"")
    msglen = found["MSGLEN"]
    if isinstance(msglen, bool) or not isinstance(msglen, int) or not MIN_MSGLEN <= msglen <= MAX_MSGLEN:
        raise SubmissionError(f"{where}: FRAMING not set, so MSGLEN means fixed-length messages and must be an int "
                              f"from {MIN_MSGLEN} (a frame's header and sequence number) to {MAX_MSGLEN}; got "
                              f"{msglen!r} (or declare FRAMING = \"length-prefixed\")")
    return Constants("fixed", msglen, IMPLIED_FIXED_NOTE)


_lock = threading.Lock()
_cache: dict[str, Loaded | SubmissionLoadFailed] = {}
_counter = 0
_counter_lock = threading.Lock()


def load(impl: str, *, timeout: float = IMPORT_TIMEOUT_S) -> Loaded:
    """Import a submission once (bounded by ``timeout``) and check its MySocket; raises SubmissionLoadFailed."""
    path = parse_impl(impl)
    with _lock:
        cached = _cache.get(impl)
        if cached is None:
            try:
                cached = load_file(path, impl=impl, timeout=timeout)
            except SubmissionLoadFailed as exc:
                cached = exc
            _cache[impl] = cached
    if isinstance(cached, SubmissionLoadFailed):
        raise cached
    return cached


def load_file(path: Path, *, impl: str = "", timeout: float = IMPORT_TIMEOUT_S) -> Loaded:
    """Import one file (any path; not cached) into a fresh module and check its MySocket."""
    global _counter
    try:
        info = path.lstat()
    except OSError as exc:
        raise SubmissionLoadFailed("error", "FileNotFoundError", f"{path}: cannot be read ({exc})") from None
    # A symlink could point anywhere in the container: only a plain file in the directory is accepted.
    if not stat.S_ISREG(info.st_mode):
        raise SubmissionLoadFailed("error", "ContractError", f"{path} is not a regular file")
    with _counter_lock:
        _counter += 1
        module_name = f"lab_submission_{path.stem.replace('-', '_')}_{_counter}"
    module = _import_bounded(path, module_name, timeout)
    try:
        return _check(impl, path, module)
    except SubmissionError as exc:
        raise SubmissionLoadFailed("error", "ContractError", str(exc)) from None


def _import_bounded(path: Path, module_name: str, timeout: float) -> Any:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SubmissionLoadFailed("error", "ImportError", f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    result: dict[str, BaseException] = {}

    def run_module() -> None:
        # Registered while it runs: dataclasses and typing look their module up in sys.modules.
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except BaseException as exc:  # noqa: BLE001 - SystemExit at import is a crash like any other
            result["exc"] = exc
            sys.modules.pop(module_name, None)

    worker = threading.Thread(target=run_module, name=f"import {path.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        # The thread cannot be stopped; it is a daemon, so it ends with this process.
        raise SubmissionLoadFailed("blocked", "ImportTimeout",
                                   f"importing {path.name} did not finish within {timeout:g} s "
                                   "(module-level code that never returns)")
    exc = result.get("exc")
    if exc is not None:
        raise SubmissionLoadFailed("error", type(exc).__name__,
                                   f"{type(exc).__name__} while importing {path.name}{_where(exc, path)}: {exc}")
    return module


def _where(exc: BaseException, path: Path) -> str:
    """' at line N' of the submission where the exception was raised, when it came from the file."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" at line {exc.lineno}"
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f" at line {lines[-1]}" if lines else ""


def _check(impl: str, path: Path, module: Any) -> Loaded:
    where = path.name
    cls = getattr(module, CLASS_NAME, None)
    if not isinstance(cls, type):
        raise SubmissionError(f"{where}: no class {CLASS_NAME} at module level")
    constants = read_constants({name: getattr(module, name) for name in ("FRAMING", "MSGLEN")
                                if hasattr(module, name)}, where)
    _check_callable(cls, "__init__", (), where)
    for method, params in REQUIRED_METHODS.items():
        _check_callable(cls, method, params, where)
    if hasattr(cls, "close"):
        _check_callable(cls, "close", (), where)
    return Loaded(impl=impl, path=path, cls=cls, framing=constants.framing, msglen=constants.msglen,
                  note=constants.note)


def _check_callable(cls: type, method: str, params: tuple[str, ...], where: str) -> None:
    func = getattr(cls, method, None)
    if not callable(func):
        raise SubmissionError(f"{where}: {CLASS_NAME} has no method {method}({', '.join(('self', *params))})")
    try:
        signature = inspect.signature(cls if method == "__init__" else func)
    except (TypeError, ValueError):
        return  # a builtin without a signature: the call itself will tell
    args = () if method == "__init__" else (None, *params)
    try:
        signature.bind(*args)
    except TypeError as exc:
        shown = "MySocket()" if method == "__init__" else f"{method}({', '.join(('self', *params))})"
        raise SubmissionError(f"{where}: {CLASS_NAME}.{method} cannot be called as {shown}: {exc}") from None


def find_socket(obj: Any) -> socket.socket | None:
    """The socket a MySocket holds (``self.sock``, else any socket attribute), for the watchdog to shut."""
    if obj is None:
        return None
    preferred = getattr(obj, "sock", None)
    if isinstance(preferred, socket.socket):
        return preferred
    for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
        if isinstance(value, socket.socket):
            return value
    return None


def close_bounded(obj: Any, timeout: float = CLOSE_TIMEOUT_S) -> None:
    """Call the submission's close() (if any) without letting it hang or raise into the runner."""
    close = getattr(obj, "close", None)
    if not callable(close):
        return

    def call() -> None:
        try:
            close()
        except BaseException:  # noqa: BLE001, S110 - a failing close() is not what the scenario judges
            pass

    t = threading.Thread(target=call, name="submission close", daemon=True)
    t.start()
    t.join(timeout)


__all__ = ["SUBMISSIONS_DIR", "IMPL_PREFIX", "NAME_PATTERN", "FRAMINGS", "MIN_MSGLEN", "MAX_MSGLEN", "CLASS_NAME",
           "REQUIRED_METHODS", "OPTIONAL_METHODS", "IMPORT_TIMEOUT_S", "IMPLIED_FIXED_NOTE", "SubmissionError",
           "SubmissionLoadFailed", "Loaded", "Constants", "is_submission", "parse_impl", "validate_constants",
           "read_constants", "load", "load_file", "find_socket", "close_bounded"]
