"""Decoding the fault agent's requests: typed, validated fields, and the two ways a request fails.

:class:`BadRequest` means the caller asked for something wrong (the message
names the field, the value and what is accepted); :class:`OpFailed` means the
request was fine but the namespace would not do it. The agent turns both into
an ``ok: false`` reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lab.toolerrors import SetupError, UsageError


class BadRequest(UsageError):
    """The request is wrong; the message names the field, the value and what is accepted."""


class OpFailed(SetupError):
    """The request was fine but the namespace would not do it (iptables error, no such process...)."""


_MISSING: Any = object()


class Args:
    """Typed, validated access to one request's fields; unknown fields are refused up front."""

    def __init__(self, op: str, request: dict[str, Any], accepted: Sequence[str]) -> None:
        self.op = op
        self._request = request
        unknown = sorted(k for k in request if k != "op" and k not in accepted)
        if unknown:
            fields = ", ".join(accepted) if accepted else "none"
            raise BadRequest(f"{op}: unknown field(s) {', '.join(map(repr, unknown))}; accepted fields: {fields}")

    def has(self, name: str) -> bool:
        return self._request.get(name) is not None

    def _get(self, name: str, default: Any) -> Any:
        value = self._request.get(name)
        if value is None:
            if default is _MISSING:
                raise BadRequest(f'{self.op}: field "{name}" is required')
            return default
        return value

    def integer(self, name: str, lo: int, hi: int, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if type(value) is not int or not lo <= value <= hi:
            raise BadRequest(f'{self.op}: field "{name}" must be an integer from {lo} to {hi}; got {value!r}')
        return value

    def ports(self, name: str, most: int = 16) -> list[int]:
        """A list of at most ``most`` TCP ports (1-65535); absent: []."""
        value = self._get(name, [])
        if (not isinstance(value, list) or len(value) > most
                or not all(type(p) is int and 1 <= p <= 65535 for p in value)):
            raise BadRequest(f'{self.op}: field "{name}" must be a list of at most {most} ports (integers from 1 '
                             f'to 65535); got {value!r}')
        return list(value)

    def number(self, name: str, lo: float, hi: float, default: Any = _MISSING, *, lo_open: bool = True) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        ok_type = type(value) in (int, float)
        low_ok = ok_type and (value > lo if lo_open else value >= lo)
        if not (ok_type and low_ok and value <= hi):
            bound = f"{lo:g} < x <= {hi:g}" if lo_open else f"{lo:g} <= x <= {hi:g}"
            raise BadRequest(f'{self.op}: field "{name}" must be a number with {bound}; got {value!r}')
        return float(value)

    def boolean(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if type(value) is not bool:
            raise BadRequest(f'{self.op}: field "{name}" must be true or false; got {value!r}')
        return value

    def choice(self, name: str, choices: Iterable[str], default: Any = _MISSING) -> Any:
        choices = list(choices)
        value = self._get(name, default)
        if value not in choices:
            accepted = ", ".join(f'"{c}"' for c in choices)
            raise BadRequest(f'{self.op}: field "{name}" must be one of {accepted}; got {value!r}')
        return value

    def string(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if not isinstance(value, str):
            raise BadRequest(f'{self.op}: field "{name}" must be a string; got {value!r}')
        return value
