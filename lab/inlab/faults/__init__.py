"""The lab's faults: one small file each, registered by name.

Each file opens with a plain comment on what the fault does on the wire,
then defines one :class:`Fault` subclass decorated with :func:`register`.
A scenario injects one through its context, which also clears it afterwards::

    ctx.apply("freeze", server="threaded")      # SIGSTOP now, SIGCONT at the end

A fault's constructor checks its parameters (bad ones raise ValueError naming
the parameter and what is accepted); ``apply`` injects it; ``clear`` undoes
it and must be safe to call twice or when ``apply`` never ran.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

REGISTRY: dict[str, type["Fault"]] = {}


class Fault:
    name = ""

    def __init__(self, ctx: Any, **params: Any) -> None:
        self.ctx = ctx
        self.params = params

    def apply(self) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


def register(cls: type[Fault]) -> type[Fault]:
    if not cls.name or cls.name in REGISTRY:
        raise RuntimeError(f"fault {cls.__name__} needs a unique name; got {cls.name!r}")
    REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def get(name: str) -> type[Fault]:
    if not REGISTRY:
        _load_all()
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown fault {name!r}; known faults: {', '.join(sorted(REGISTRY))}") from None


def names() -> list[str]:
    if not REGISTRY:
        _load_all()
    return sorted(REGISTRY)


def need(params: dict[str, Any], key: str, kind: type | tuple[type, ...], accepted: str) -> Any:
    """One required parameter of the right type, or a ValueError that says what is accepted."""
    if key not in params:
        raise ValueError(f"missing parameter {key!r} ({accepted})")
    value = params[key]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise ValueError(f"parameter {key!r} must be {accepted}; got {value!r}")
    return value


SERVERS = ("threaded", "selectors")


def server_param(params: dict[str, Any], key: str = "server") -> str:
    """Which lab server (or its proxy) a fault targets: 'threaded' (the default) or 'selectors'."""
    value = params.get(key, "threaded")
    if value not in SERVERS:
        raise ValueError(f"parameter {key!r} must be 'threaded' or 'selectors'; got {value!r}")
    return value
