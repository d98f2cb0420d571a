"""Command line: ``python -m lab.evidence FILE [--server-port N] [--json]`` summarizes a pcap's TCP connections.

Exit 0 with the summary (:func:`lab.evidence.text.render`, or JSON) on stdout;
exit 2 with ``capture: FILE: problem`` on stderr when the file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys

from lab.evidence.pcap import CaptureError
from lab.evidence.tcp import summarize_file
from lab.evidence.text import render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.evidence",
                                     description="Summarize the TCP connections in a classic pcap file.")
    parser.add_argument("file", help="a pcap written by tcpdump -w")
    parser.add_argument("--server-port", type=int, default=None,
                        help="the service's port, to tell client from server when the handshake was not captured")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    opts = parser.parse_args(argv)
    try:
        summary = summarize_file(opts.file, server_port=opts.server_port)
    except (OSError, CaptureError) as exc:
        print(f"capture: {opts.file}: {exc}", file=sys.stderr)
        return 2
    if opts.json:
        print(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
