"""Someone's own socket code: the contract a submission meets, and how the lab names one.

A *submission* is one Python file defining a HOWTO-style ``MySocket`` class (see
docs/grading.md). The host (:mod:`lab.grading.card`) checks it without running it; in the
lab it runs in the sandbox container, never in the judge's process, and the in-lab runner
names it ``sandbox:NAME``::

    parse_impl("sandbox:mine-1a2b3c4d")      # "mine-1a2b3c4d", after a strict check
    read_constants({"MSGLEN": 1024}, "x.py") # Constants("fixed", 1024, IMPLIED_FIXED_NOTE)

This module holds the rules both sides apply: the accepted ``FRAMING`` and ``MSGLEN`` (the one
rule, :func:`read_constants`, for the host's static check and for the sandbox's loader,
:mod:`lab.sandbox.pyloader`), the methods ``MySocket`` must have, and the outcome a
submission that cannot be made ready becomes (:class:`SubmissionLoadFailed`).

Runs inside the containers: standard library (and :mod:`lab.sockets.framing`) only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lab.sockets.framing import HEADER_SIZE, SEQ
from lab.toolerrors import CheckFailed, UsageError

if TYPE_CHECKING:
    from lab.inlab.scenario import Status

SANDBOX_PREFIX = "sandbox:"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_IMPL_RE = re.compile(rf"{re.escape(SANDBOX_PREFIX)}({NAME_PATTERN})\Z")
FRAMINGS = ("fixed", "length-prefixed")
STAMP_SIZE = 16
"""Bytes at the start of every body that the judge stamps (8-byte nonce, 8-byte counter) to tell messages apart."""
MIN_MSGLEN = HEADER_SIZE + SEQ.size + STAMP_SIZE
"""The smallest fixed message: a DATA frame's 5-byte header, its 8-byte sequence number and a 16-byte body."""
MIN_MSGLEN_REASON = (f"a DATA frame's {HEADER_SIZE}-byte header, {SEQ.size}-byte sequence number and a "
                     f"{STAMP_SIZE}-byte body the lab can check")
MAX_MSGLEN = 1 << 20
CLASS_NAME = "MySocket"
REQUIRED_METHODS: dict[str, tuple[str, ...]] = {"connect": ("host", "port"), "mysend": ("msg",), "myreceive": ()}
OPTIONAL_METHODS = ("close",)
IMPORT_TIMEOUT_S = 5.0
IMPLIED_FIXED_NOTE = "FRAMING not set: graded as fixed-length MSGLEN messages, as the HOWTO's class is written"
CLOSE_TIMEOUT_S = 2.0


class SubmissionError(UsageError):
    """An implementation name that is not an accepted submission name; the message says what is accepted."""


class SubmissionLoadFailed(CheckFailed):
    """The submission could not be made ready in the lab; its fields are the outcome to record.

    status   "error" (it raised, or broke the contract) or "blocked" (the import never finished)
    error    the exception's class name, or "ContractError" / "ImportTimeout"
    """

    def __init__(self, status: Status, error: str, message: str) -> None:
        super().__init__(message)
        self.status: Status = status
        self.error, self.message = error, message


def is_submission(impl: str) -> bool:
    """True for a name of code that runs in the sandbox (``sandbox:NAME``), valid or not: parse_impl says."""
    return impl.startswith(SANDBOX_PREFIX)


def parse_impl(impl: str) -> str:
    """The NAME of a ``sandbox:NAME`` implementation, after checking it strictly."""
    match = _IMPL_RE.match(impl)
    if match is None:
        raise SubmissionError(f"implementation {impl!r} is not an accepted submission: use {SANDBOX_PREFIX}NAME, "
                              "where NAME is 1 to 64 letters, digits, '_' or '-' starting with a letter or digit")
    return match.group(1)


def validate_constants(framing: Any, msglen: Any, where: str) -> int | None:
    """Check FRAMING and MSGLEN (shared by the host's static check and the in-lab one); returns MSGLEN."""
    if framing not in FRAMINGS:
        raise SubmissionError(f"{where}: FRAMING must be one of {', '.join(map(repr, FRAMINGS))}; got {framing!r}")
    if framing != "fixed":
        return None
    if isinstance(msglen, bool) or not isinstance(msglen, int) or not MIN_MSGLEN <= msglen <= MAX_MSGLEN:
        raise SubmissionError(f"{where}: FRAMING 'fixed' needs MSGLEN, an int from {MIN_MSGLEN} ({MIN_MSGLEN_REASON}) "
                              f"to {MAX_MSGLEN}; got {msglen!r}")
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
                              f"from {MIN_MSGLEN} ({MIN_MSGLEN_REASON}) to {MAX_MSGLEN}; got "
                              f"{msglen!r} (or declare FRAMING = \"length-prefixed\")")
    return Constants("fixed", msglen, IMPLIED_FIXED_NOTE)


__all__ = ["SANDBOX_PREFIX", "NAME_PATTERN", "FRAMINGS", "STAMP_SIZE", "MIN_MSGLEN", "MIN_MSGLEN_REASON",
           "MAX_MSGLEN", "CLASS_NAME", "REQUIRED_METHODS", "OPTIONAL_METHODS", "IMPORT_TIMEOUT_S", "CLOSE_TIMEOUT_S",
           "IMPLIED_FIXED_NOTE", "SubmissionError", "SubmissionLoadFailed", "Constants", "is_submission",
           "parse_impl", "validate_constants", "read_constants"]
