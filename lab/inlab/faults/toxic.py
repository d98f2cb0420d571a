# What every Toxiproxy fault shares: one toxic on one proxy, added when the fault is
# applied and removed when it is cleared. The proxy, not the network, misbehaves; what
# that looks like on the wire is told in the file of each toxic type.
from __future__ import annotations

import dataclasses

from lab.inlab.context import FaultContext
from lab.inlab.faults import Fault, Server, param
from lab.inlab.toxics import Stream


@dataclasses.dataclass(frozen=True)
class ToxicParams:
    """What every toxic takes. A toxic type's own attributes (Toxiproxy's names, units and
    defaults) are the int fields its file adds to these."""

    proxy: Server = "threaded"
    stream: Stream = "downstream"
    toxicity: float = param(1.0, ge=0, le=1)   # the share of connections the toxic applies to

    def attributes(self) -> dict[str, int]:
        shared = {f.name for f in dataclasses.fields(ToxicParams)}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in shared}


class Toxic(Fault):
    """Subclasses set ``kind`` (Toxiproxy's toxic type) and declare ``params`` (ToxicParams and its attributes)."""

    kind = ""
    params: ToxicParams

    def __init__(self, ctx: FaultContext, params: ToxicParams) -> None:
        super().__init__(ctx, params)
        self.toxic_name = f"lab_{self.kind}_{params.stream}"
        self.added = False

    def apply(self) -> None:
        p = self.params
        self.ctx.toxiproxy.add_toxic(p.proxy, self.kind, stream=p.stream, toxicity=p.toxicity, name=self.toxic_name,
                                     **p.attributes())
        self.added = True
        # Only a first check: a toxic that is listed may still do nothing (toxicity 0) or less than
        # asked. Each scenario proves the toxic's effect on the wire, on its own connections.
        listed = {t["name"]: t for t in self.ctx.toxiproxy.toxics(p.proxy)}
        found = listed.get(self.toxic_name)
        self.ctx.prove(f"toxiproxy lists the {self.kind} toxic on the {p.proxy} proxy", found is not None,
                       f"{p.proxy}: {found.get('stream')}, toxicity {found.get('toxicity')}, {found.get('attributes')}"
                       if found is not None else
                       f"{p.proxy}: no toxic named {self.toxic_name}; listed: {', '.join(sorted(listed)) or 'none'}")

    def clear(self) -> None:
        if self.added:
            self.added = False
            self.ctx.toxiproxy.remove_toxic(self.params.proxy, self.toxic_name)
