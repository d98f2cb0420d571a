# What every Toxiproxy fault shares: one toxic on one proxy, added when the fault is
# applied and removed when it is cleared. The proxy, not the network, misbehaves; what
# that looks like on the wire is told in the file of each toxic type.
from __future__ import annotations

from typing import Any

from lab.inlab.faults import Fault, server_param
from lab.inlab.toxics import STREAMS


class Toxic(Fault):
    """Subclasses set ``kind`` (Toxiproxy's toxic type); parameters other than
    ``proxy`` ("threaded" or "selectors") and ``stream`` are the toxic's attributes."""

    kind = ""

    def __init__(self, ctx: Any, **params: Any) -> None:
        super().__init__(ctx, **params)
        attributes = dict(params)
        self.proxy = server_param(attributes, "proxy")
        attributes.pop("proxy", None)
        self.stream = attributes.pop("stream", "downstream")
        if self.stream not in STREAMS:
            raise ValueError(f"parameter 'stream' must be one of {', '.join(STREAMS)}; got {self.stream!r}")
        self.attributes = attributes
        self.toxic_name = f"lab_{self.kind}_{self.stream}"
        self.added = False

    def apply(self) -> None:
        self.ctx.toxiproxy.add_toxic(self.proxy, self.kind, stream=self.stream, name=self.toxic_name,
                                     **self.attributes)
        self.added = True
        listed = {t["name"]: t for t in self.ctx.toxiproxy.toxics(self.proxy)}
        self.ctx.prove(f"toxiproxy lists the {self.kind} toxic", self.toxic_name in listed,
                       f"{self.proxy}/{self.stream}: {listed.get(self.toxic_name, {}).get('attributes')}")

    def clear(self) -> None:
        if self.added:
            self.added = False
            self.ctx.toxiproxy.remove_toxic(self.proxy, self.toxic_name)
