"""Loading a submitted Python file in the sandbox: a bounded import into a fresh module, then the contract.

The sandbox's adapter (:mod:`lab.sandbox.adapter`) calls this once, before it answers the
judge's hello; the judge's process never imports submitted code::

    loaded = load_file(Path("/submission/mine.py"))   # bounded import, contract checked
    obj = loaded.cls()                                 # MySocket()
    loaded.framing, loaded.msglen                      # "fixed", 1024

The import runs in a daemon thread with a deadline, because module-level code is the
submitter's and may never return; a load that fails (an exception, a missing method, an
import that does not finish) raises :class:`~lab.inlab.submission.SubmissionLoadFailed`,
which carries what the runner records as the submission's outcome. The rules on FRAMING and
MSGLEN are :func:`lab.inlab.submission.read_constants`, the same the host's static check uses.

Runs inside the sandbox: standard library (and the lab's contract module) only.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import socket
import stat
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from lab.inlab.submission import (CLASS_NAME, CLOSE_TIMEOUT_S, IMPORT_TIMEOUT_S, REQUIRED_METHODS, SubmissionError,
                                  SubmissionLoadFailed, read_constants)


@dataclasses.dataclass(frozen=True)
class Loaded:
    impl: str
    path: Path
    cls: type
    framing: str
    msglen: int | None
    note: str | None = None                # set when the framing was inferred (MSGLEN and no FRAMING)


_counter = 0
_counter_lock = threading.Lock()


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


__all__ = ["Loaded", "load_file", "find_socket", "close_bounded"]
