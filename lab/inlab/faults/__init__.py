"""The lab's faults: one small file each, registered by name.

Each file opens with a plain comment on what the fault does on the wire,
then defines one :class:`Fault` subclass decorated with :func:`register`.
A scenario injects one through its context, which also clears it afterwards::

    ctx.apply("freeze", server="threaded")      # SIGSTOP now, SIGCONT at the end

A fault declares its parameters the way Toxiproxy declares a toxic's fields: a
frozen dataclass of typed fields with defaults, named by the fault's ``params``
annotation. A ``Literal`` lists the accepted values, :func:`param` adds bounds::

    @dataclasses.dataclass(frozen=True)
    class LossParams(IptablesParams):
        probability: float = param(0.1, gt=0, lt=1)

    @register
    class Loss(IptablesFault):
        name = "loss"
        params: LossParams          # the fault's code reads self.params.probability

:func:`create` decodes the scenario's keyword arguments into that dataclass once
(:func:`decode`), so the fault's code never checks them; anything else, whether an
unknown parameter, a wrong type, a value out of range or not among the choices, raises
:class:`lab.toolerrors.UsageError` in one format::

    fault 'loss': parameter 'probability' = 1.5: expected a number > 0 and < 1

``apply`` injects the fault; ``clear`` undoes it and must be safe to call twice or
when ``apply`` never ran.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import operator
import pkgutil
import types
import typing
from typing import Any, ClassVar, Literal

from lab.inlab.context import FaultContext
from lab.toolerrors import UsageError

REGISTRY: dict[str, type["Fault"]] = {}

Server = Literal["threaded", "selectors", "forking"]
"""Which lab server (or its Toxiproxy proxy) a fault targets; lab.addresses.SERVER_PORTS has their ports."""


@dataclasses.dataclass(frozen=True)
class NoParams:
    """For a fault that takes no parameters."""


@dataclasses.dataclass(frozen=True)
class ServerParams:
    """For a fault that targets one lab server process."""

    server: Server = "threaded"


class Fault:
    """One fault: ``name`` is what scenarios call it, ``params`` names its parameters' dataclass."""

    name: ClassVar[str] = ""
    params: Any     # each subclass narrows this to its own parameters' dataclass (see register)

    def __init__(self, ctx: FaultContext, params: Any) -> None:
        self.ctx = ctx
        self.params = params

    def apply(self) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


F = typing.TypeVar("F", bound=type[Fault])


def register(cls: F) -> F:
    if not cls.name or cls.name in REGISTRY:
        raise RuntimeError(f"fault {cls.__name__} needs a unique name; got {cls.name!r}")
    params_class(cls)  # fails here, at import, when the declaration cannot be decoded into
    REGISTRY[cls.name] = cls
    return cls


def params_class(cls: type[Fault]) -> type:
    """The dataclass a fault's ``params`` annotation names, each field of a type :func:`decode` knows."""
    declared = typing.get_type_hints(cls).get("params")
    if not (isinstance(declared, type) and dataclasses.is_dataclass(declared)):
        raise RuntimeError(f"fault {cls.__name__} must declare its parameters as 'params: SomeParams', "
                           f"a dataclass; got {declared!r}")
    for f in dataclasses.fields(declared):
        accepted(typing.get_type_hints(declared)[f.name], f.metadata)  # raises TypeError for an unknown type
    return declared


_loaded = False


def _load_all() -> None:
    # Every fault file, once: importing one file directly registers only that one fault.
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def get(name: str) -> type[Fault]:
    _load_all()
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown fault {name!r}; known faults: {', '.join(sorted(REGISTRY))}") from None


def names() -> list[str]:
    _load_all()
    return sorted(REGISTRY)


def create(name: str, ctx: FaultContext, params: dict[str, Any]) -> Fault:
    """The fault ``name`` with its parameters decoded and checked, ready to ``apply``."""
    cls = get(name)
    return cls(ctx, decode(name, params))


# Parameters ---------------------------------------------------------------------------------------
_BOUNDS = {"ge": (">=", operator.ge), "gt": (">", operator.gt), "le": ("<=", operator.le), "lt": ("<", operator.lt)}
_NOT_GIVEN = object()


def param(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None) -> Any:
    """A parameter field with bounds: ``port: int = param(DEFAULT_PORT, ge=1, le=65535)``."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    return dataclasses.field(default=default, metadata={"bounds": bounds})


def _optional(kind: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); anything else → (kind, False)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(typing.get_args(kind)):
            return rest[0], True
    return kind, False


def accepted(kind: Any, metadata: typing.Mapping[str, Any] | None = None) -> str:
    """What a parameter of this type (and these bounds) accepts, in words."""
    kind, optional = _optional(kind)
    if typing.get_origin(kind) is Literal:
        text = "one of " + ", ".join(map(repr, typing.get_args(kind)))
    elif kind is bool:
        text = "True or False"
    elif kind is int:
        text = "an integer"
    elif kind is float:
        text = "a number"
    elif kind is str:
        text = "a string"
    else:
        raise TypeError(f"a fault parameter is a bool, int, float, str, Literal or one of those | None; got {kind!r}")
    bounds = (metadata or {}).get("bounds", {})
    if bounds:
        text += " " + " and ".join(f"{_BOUNDS[k][0]} {v:g}" for k, v in bounds.items())
    return text + (" or None" if optional else "")


def _fits(kind: Any, metadata: typing.Mapping[str, Any], value: Any) -> tuple[bool, Any]:
    """(True, the value as the field holds it) when ``value`` is one ``kind`` accepts."""
    kind, optional = _optional(kind)
    if value is None:
        return optional, None
    if typing.get_origin(kind) is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(kind)), value
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, kind)
    bounds = metadata.get("bounds", {})
    return ok and all(_BOUNDS[k][1](value, v) for k, v in bounds.items()), value


def _refuse(fault: str, key: str, value: Any, expected: str) -> UsageError:
    shown = "(not given)" if value is _NOT_GIVEN else repr(value)
    return UsageError(f"fault {fault!r}: parameter {key!r} = {shown}: expected {expected}")


def decode(name: str, given: typing.Mapping[str, Any]) -> Any:
    """A scenario's keyword arguments for fault ``name`` as its parameters' dataclass, every value checked."""
    declared = params_class(get(name))
    hints = typing.get_type_hints(declared)
    fields = {f.name: f for f in dataclasses.fields(declared)}
    for key, value in given.items():
        if key not in fields:
            expected = (f"one of its parameters: {', '.join(fields)}" if fields
                        else f"no parameters: {name} takes none")
            raise _refuse(name, key, value, expected)
    values = {}
    for key, f in fields.items():
        value = given.get(key, _NOT_GIVEN)
        if value is _NOT_GIVEN:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _refuse(name, key, value, accepted(hints[key], f.metadata))
            continue
        ok, value = _fits(hints[key], f.metadata, value)
        if not ok:
            raise _refuse(name, key, given[key], accepted(hints[key], f.metadata))
        values[key] = value
    return declared(**values)


def parameters(name: str) -> list[tuple[str, str, Any]]:
    """Fault ``name``'s parameters: (name, what it accepts, its default or dataclasses.MISSING)."""
    declared = params_class(get(name))
    hints = typing.get_type_hints(declared)
    return [(f.name, accepted(hints[f.name], f.metadata), f.default) for f in dataclasses.fields(declared)]
