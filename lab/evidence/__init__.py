"""Packet evidence: pcap files read back and each TCP connection's story told. Standard library only.

    from lab.evidence import summarize, render

    summary = summarize(Path("server.pcap").read_bytes(), server_port=7000)
    print(render(summary))

or from a shell: ``python -m lab.evidence server.pcap --server-port 7000 [--json]``.

``pcap``       the classic pcap format and frame decoding: a file's TCP segments (:func:`read_capture`)
``tcp``        each connection's story (:func:`summarize`) and the summary types; tcpdump's own counts
``text``       the summary as text for people (:func:`render`)
``__main__``   the command line
"""

from lab.evidence.pcap import CaptureError, Endpoint, PcapFile, Segment, read_capture
from lab.evidence.tcp import (
    CaptureSummary, ConnectionSummary, DirectionSummary, Event, FlagStat, TcpdumpStats, summarize, summarize_file,
    tcpdump_stats,
)
from lab.evidence.text import render

__all__ = [
    "CaptureError", "Endpoint", "Segment", "PcapFile", "read_capture",
    "FlagStat", "DirectionSummary", "Event", "ConnectionSummary", "CaptureSummary",
    "summarize", "summarize_file", "render", "TcpdumpStats", "tcpdump_stats",
]
