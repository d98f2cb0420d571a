"""The host's half of a container-level fault: answers the in-lab runner's requests through the Docker SDK.

The runner (started with ``--host-fault freeze=pause``) prints
``{"host_fault": "pause", "service": "server", "token": T}`` when the fault is
due and waits for ``/tmp/host-fault-T.json`` in the client container. This
module does the Docker action, writes that answer with the evidence, and
always undoes the action at the end, also when the run fails.
"""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

from lab.host.topology import Lab

UNDO = {"pause": "unpause"}


def _server(lab: Lab, docker_client: Any) -> Any:
    found = docker_client.containers.list(all=True, filters={
        "label": [f"com.docker.compose.project={lab.project}", "com.docker.compose.service=server"]})
    assert len(found) == 1, found
    return found[0]


def _do(container: Any, action: str) -> dict[str, Any]:
    if action == "pause":
        container.pause()
    elif action == "unpause":
        container.unpause()
    else:
        return {"ok": False, "evidence": f"this harness does not do {action!r}"}
    container.reload()
    return {"ok": True, "evidence": f"docker reports the container {container.status}"}


def run_with_host_faults(lab: Lab, docker_client: Any, name: str, faults: dict[str, str], *,
                         timeout: float = 120.0) -> dict[str, Any]:
    container = _server(lab, docker_client)
    argv = lab.compose_argv("exec", "-T", "client", "python3", "-m", "lab.inlab.runner", "run", name, "--json",
                            *(f"--host-fault={k}={v}" for k, v in faults.items()))
    proc = subprocess.Popen(argv, cwd=lab.repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(timeout, proc.kill)  # nothing waits forever
    killer.start()
    done: list[str] = []
    report: dict[str, Any] | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith('{"host_fault"'):
                request = json.loads(line)
                answer = _do(container, request["host_fault"])
                done.append(request["host_fault"])
                # Written aside, then renamed: the runner polls for the name, and must never find
                # the file made but not yet written (it did, on a loaded machine).
                path = f"/tmp/host-fault-{request['token']}.json"
                res = lab.exec("client", ["sh", "-c", f"cat > {path}.part && mv {path}.part {path}"],
                               stdin=json.dumps(answer).encode(), timeout=30)
                assert res.returncode == 0, res.stderr
            elif line.startswith("{"):
                report = json.loads(line)
        proc.wait(timeout=30)
    finally:
        killer.cancel()
        container.reload()
        if container.status == "paused":
            container.unpause()
        if proc.poll() is None:
            proc.kill()
        stderr = proc.stderr.read() if proc.stderr else ""
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    # Docker calls a paused container unhealthy at once, healthy again only at its next check.
    lab.wait_healthy(timeout=60)
    assert report is not None, f"no report from the runner (exit {proc.returncode}): {stderr[-2000:]}"
    report["host_actions"] = done
    return report
