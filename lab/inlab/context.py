"""What scenarios and faults may use of the runner's context: the seams, as Protocols.

The runner hands a scenario's ``run(ctx)``, its workers and every fault one
:class:`lab.inlab.runner.Context`. These Protocols list exactly the part of it each
side uses, so a scenario or a fault that reaches for anything else is a type error,
and a stand-in context (a test fake) knows what it must provide::

    def run(ctx: ScenarioContext) -> None: ...                  # a scenario
    def worker(ctx: ScenarioContext, subject, outcome) -> None: ...
    class Freeze(Fault): ...                                    # self.ctx: FaultContext

The agents and the Toxiproxy client appear as the few calls made on them.
Read-only members are properties here; ``fault_at`` is a plain attribute because a
scenario or a fault may move the fault's moment (to the host's answer, to the point the
clients start).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lab.evidence import CaptureSummary, PcapFile
    from lab.inlab.scenario import Outcome
    from lab.inlab.subjects import Subject
    from lab.sockets.robust import RobustConfig


class ServerAgent(Protocol):
    """The server-agent's calls that faults and scenarios make (lab.inlab.agent.client.AgentClient)."""

    def signal(self, target: str, signal: str, peer_port: int | None = None) -> list[int]: ...

    def wait_process(self, target: str, state: str, timeout: float = 10.0,
                     not_pid: int | None = None) -> int | None: ...

    def processes(self, sockets: bool = False) -> list[dict[str, Any]]: ...

    def socket_rows(self, port: int | None = None) -> list[dict[str, Any]]: ...

    def bind(self, port: int, binder: str) -> dict[str, Any]: ...

    def block(self, port: int | None = None, *, direction: str = "both", syn_only: bool = False,
              action: str = "drop", probability: float | None = None) -> list[str]: ...

    def unblock(self) -> list[str]: ...

    def counters(self) -> list[dict[str, Any]]: ...

    def tcp_stats(self) -> dict[str, dict[str, int]]: ...

    def tcp_table(self, port: int | None = None) -> list[Any]: ...


class ClientAgent(Protocol):
    """The client-agent's calls that faults and scenarios make."""

    def tcp_stats(self) -> dict[str, dict[str, int]]: ...

    def dns(self, action: str, *, address: str = "127.0.0.11") -> list[str]: ...

    def counters(self) -> list[dict[str, Any]]: ...

    def unblock(self) -> list[str]: ...
    def exhaust_ports(self, target: tuple[str, int], *, spare: int = 4, timeout: float = 20.0) -> dict[str, Any]: ...

    def release_ports(self) -> dict[str, Any]: ...


class ToxiproxyAPI(Protocol):
    """The Toxiproxy calls that faults and scenarios make (lab.inlab.toxics.Toxiproxy)."""

    def add_toxic(self, proxy: str, kind: str, *, stream: str = "downstream", toxicity: float = 1.0,
                  name: str | None = None, **attributes: int | float) -> dict[str, Any]: ...

    def remove_toxic(self, proxy: str, name: str) -> None: ...

    def toxics(self, proxy: str) -> list[dict[str, Any]]: ...

    def toxic(self, proxy: str, kind: str, **kw: Any) -> AbstractContextManager[dict[str, Any]]: ...


class WallClockFile(Protocol):
    """The wall-clock offset the clock-jump scenario's faked processes read (lab.inlab.faults.clock_jump)."""

    def jump(self, offset_s: int) -> None: ...

    def reset(self) -> None: ...


class Capture(Protocol):
    """A running packet capture (lab.inlab.runner.CaptureHandle)."""

    @property
    def pcap(self) -> PcapFile | None: ...        # the raw segments, once stopped

    def stop(self) -> CaptureSummary: ...


class FaultContext(Protocol):
    """What a fault (lab.inlab.faults) may use of its context."""

    fault_at: float | None

    @property
    def server_agent(self) -> ServerAgent: ...

    @property
    def client_agent(self) -> ClientAgent: ...

    @property
    def router_agent(self) -> ServerAgent: ...   # the same calls, on the router's forwarding hop

    @property
    def wall_clock(self) -> WallClockFile: ...

    @property
    def toxiproxy(self) -> ToxiproxyAPI: ...

    def mark(self, actor: str, what: str, **facts: Any) -> float: ...

    def mark_at(self, wall: float, actor: str, what: str, **facts: Any) -> float: ...

    def prove(self, name: str, ok: bool, detail: str = "") -> None: ...

    def server_control(self, server: str = "threaded", **request: Any) -> dict[str, Any]: ...


class ScenarioContext(Protocol):
    """What a scenario's ``run(ctx)`` and its workers may use of their context."""

    fault_at: float | None
    fault_wall: float | None        # wall clock (tcpdump's) when the fault was in place
    teardown_wall: float | None     # wall clock when the lab began closing the subjects

    @property
    def impls(self) -> list[str]: ...

    @property
    def config(self) -> RobustConfig: ...

    @property
    def t0(self) -> float: ...

    @property
    def facts(self) -> dict[str, Any]: ...

    @property
    def outcomes(self) -> dict[str, Outcome]: ...

    @property
    def server_agent(self) -> ServerAgent: ...

    @property
    def client_agent(self) -> ClientAgent: ...

    @property
    def router_agent(self) -> ServerAgent: ...   # the same calls, on the router's forwarding hop

    @property
    def toxiproxy(self) -> ToxiproxyAPI: ...

    # Time and record
    def now(self) -> float: ...

    def mark(self, actor: str, what: str, **facts: Any) -> float: ...

    def check(self, impl: str, name: str, ok: bool, detail: str = "") -> None: ...

    def prove(self, name: str, ok: bool, detail: str = "") -> None: ...

    def prove_each(self, proof: Callable[..., Any], *args: Any, **kwargs: Any) -> None: ...

    def on_cleanup(self, action: Callable[[], None]) -> None: ...

    # The lab
    def target(self, server: str = "threaded", path: str | None = None) -> tuple[str, int]: ...

    def server_stats(self, server: str = "threaded") -> dict[str, Any]: ...

    def apply(self, fault: str, **params: Any) -> Any: ...

    def capture(self, where: str = "server", port: int = ..., *, filter: str | None = None) -> Capture: ...

    # The connections under test
    proving_for: str | None

    @property
    def judged(self) -> list[str]: ...

    def client_ports(self, impl: str | None = None) -> set[int]: ...

    # The subjects
    def ready(self) -> None: ...

    def exchange(self, subject: Subject, outcome: Outcome, body: bytes) -> bytes: ...

    def side_by_side(self, worker: Worker, *, fault: Callable[[], Any] | None = None, server: str = "threaded",
                     configs: dict[str, RobustConfig] | None = None, sequential: bool = False) -> None: ...


Worker = Callable[["ScenarioContext", "Subject", "Outcome"], None]
"""``worker(ctx, subject, outcome)``: what one implementation does in a scenario (lab.inlab.workloads)."""

__all__ = ["Capture", "ClientAgent", "FaultContext", "ScenarioContext", "ServerAgent", "ToxiproxyAPI", "Worker"]
