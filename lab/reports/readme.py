"""The README's scenario and fault sections, written from the scenario files and fault files themselves.

The scenario files (``scenarios/*.py``) and the fault files (``lab/inlab/faults/*.py``)
are the single source of what each one does; the README shows the same words,
so they cannot drift apart. ``python -m lab.reports.readme`` rewrites the parts of
README.md between the markers; ``python -m lab.reports.readme --check`` exits 1 when
the README is out of date (a unit test runs the same check)::

    <!-- scenarios:start -->  ...generated...  <!-- scenarios:end -->
    <!-- faults:start -->     ...generated...  <!-- faults:end -->
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from lab.host.topology import DEFAULT_PROJECT
from lab.inlab import scenario
from lab.sockets.robust import RobustConfig

ROOT = Path(__file__).resolve().parents[2]
FAULTS_DIR = ROOT / "lab" / "inlab" / "faults"
MARKERS = ("scenarios", "faults")


def _expect_line(impl: str, e: scenario.Expect) -> str:
    if e.status == "error":
        what = f"raises {' or '.join(f'`{x}`' for x in e.errors)}"
        if e.within is not None:
            what += f" within {e.within:g} s"
    elif e.status == "blocked":
        what = "is still blocked when the watchdog fires"
    else:
        what = "completes" + (", returning corrupt data without an error" if e.corrupt else " with every reply intact")
        if e.within is not None:   # a completion is timed too (a failover, a recovery): its bound is part of it
            what += f", within {e.within:g} s of the fault"
    for key, value in e.detail.items():
        shown = " or ".join(map(str, value)) if isinstance(value, tuple) else value
        what += f", {key} = {shown}"
    return f"- **{impl}** {what}" + (f" — {e.note}" if e.note else "")


def scenarios_section() -> str:
    found = scenario.discover()
    b = RobustConfig().bounds()
    out = ["The robust implementation runs with its defaults, and every bound below follows from them: connect "
           f"{b['connect']:g} s, heartbeat every {RobustConfig().heartbeat_interval:g} s and dead after "
           f"{RobustConfig().dead_after:g} s of silence (a frozen peer is caught within {b['frozen_peer']:g} s), "
           f"read {b['stuck_reply']:g} s, write {b['send_stall']:g} s, keepalive 1/1/3 (an idle dead peer within "
           f"{b['idle_peer_gone']:g} s), TCP_USER_TIMEOUT {b['unacked_data']:g} s. A watchdog (10 s unless the "
           "scenario says otherwise) decides that a call is blocked.", "",
           "| scenario | HOWTO section | path | injection |", "| --- | --- | --- | --- |"]
    for s in found.values():
        out.append(f"| [{s.name}](#{s.name}) | {s.howto} | {s.path} | {' '.join(s.injection.split())} |")
    for s in found.values():
        out += ["", f"### {s.name}", "", f"*{s.title}* — HOWTO: *{s.howto}*; path: {s.path}"
                + (f"; watchdog {s.watchdog:g} s" if s.watchdog else ""), "",
                " ".join(s.wire.split()), "",
                f"**Injection.** {' '.join(s.injection.split())}", "",
                "**What each implementation must do.**", "",
                *(_expect_line(impl, e) for impl, e in s.expect.items()), ""]
        if s.look_for:
            out += [f"**In the capture.** {s.look_for}", ""]
        out += [f"**Say.** {s.remember}", "",
                "```sh", f"./labw run {s.name}                  # or: ./labw demo {s.name}",
                f"SCENARIO={s.name} docker compose -p {DEFAULT_PROJECT} --profile scenario up --attach scenario "
                "--exit-code-from scenario",
                "```"]
    return "\n".join(out)


def _opening_comment(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(x for x in lines if x)


def faults_section() -> str:
    from lab.inlab import faults

    out = ["One small file per fault in `lab/inlab/faults/`, each opening with what it does on the wire, registered "
           "by the name a scenario uses (`ctx.apply(NAME, **parameters)`). Toxiproxy's units: latency and jitter "
           "in ms, bandwidth `rate` in KB/s (1 KB = 1000 bytes), slicer `average_size`/`size_variation` in bytes "
           "and `delay` in microseconds, limit_data `bytes`, timeout and slow_close in ms; `stream` upstream is "
           "client → server, downstream server → client.", ""]
    for name in faults.names():
        cls = faults.get(name)
        path = Path(sys.modules[cls.__module__].__file__ or "")
        out += [f"### fault: {name}", "", _opening_comment(path), "", _parameters_line(name), ""]
    return "\n".join(out).rstrip()


def _parameters_line(name: str) -> str:
    """The fault's declared parameters (lab.inlab.faults.parameters), as the registry checks them."""
    import dataclasses

    from lab.inlab import faults

    shown = [f"`{key}`: {accepted}, " + ("required" if default is dataclasses.MISSING else f"default {default!r}")
             for key, accepted, default in faults.parameters(name)]
    return "**Parameters.** " + ("; ".join(shown) if shown else "none") + "."


def render_readme(text: str) -> str:
    sections = {"scenarios": scenarios_section(), "faults": faults_section()}
    for marker in MARKERS:
        pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md has no '<!-- {marker}:start -->' ... '<!-- {marker}:end -->' markers")
        text = pattern.sub(lambda m: m.group(1) + sections[marker] + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.reports.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    opts = parser.parse_args(argv)
    readme = ROOT / "README.md"
    current = readme.read_text()
    wanted = render_readme(current)
    if opts.check:
        if wanted != current:
            print("README.md is out of date with the scenario or fault files: run python -m lab.reports.readme",
                  file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        readme.write_text(wanted)
        print("README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
