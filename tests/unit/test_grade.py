"""Grading without Docker: the static check, the in-lab loader, the verdict rules, the report card.

The lab itself is replaced by a recorder that answers ``docker compose exec`` with
canned runner reports, so the grading flow (upload, one run per scenario, removal,
nothing sent for an invalid file) is asserted call by call. The verdict rules are
asserted case by case on synthetic outcomes, and against the scenarios' own
oracles: what each scenario predicts for naive and robust is what the rules say.
"""

from __future__ import annotations

import json
import re
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from lab.inlab import runreport

from lab.grading import card as grading
from lab.grading import verdicts as gv
from lab.inlab import runner
from lab.inlab import scenario
from lab.inlab import submission
from lab.sandbox import pyloader
from lab.host.engine import Result
from lab.grading.static import MAX_BYTES, InvalidSubmission, check_file
from lab.inlab.scenario import Expect

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"
SCENARIOS = scenario.discover()

GOOD_SOURCE = '''
import socket
FRAMING = "length-prefixed"

class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket()

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        self.sock.sendall(msg)

    def myreceive(self):
        return self.sock.recv(65536)

    def close(self):
        self.sock.close()
'''


def write(tmp_path: Path, source: str, name: str = "mine.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def replaced(old: str, new: str) -> str:
    assert old in GOOD_SOURCE
    return GOOD_SOURCE.replace(old, new)


# The static check -----------------------------------------------------------------------------------
def test_a_good_file_passes_and_reports_its_framing(tmp_path: Path) -> None:
    info = check_file(write(tmp_path, GOOD_SOURCE))
    assert (info.framing, info.msglen, info.has_close) == ("length-prefixed", None, True)


def test_fixed_framing_reads_msglen_also_as_integer_arithmetic(tmp_path: Path) -> None:
    source = replaced('FRAMING = "length-prefixed"', 'FRAMING = "fixed"\nMSGLEN = 1000 + 24')
    info = check_file(write(tmp_path, source))
    assert (info.framing, info.msglen) == ("fixed", 1024)


def test_the_check_never_runs_the_file(tmp_path: Path) -> None:
    # If this file were executed, it would create the marker and then spin for 60 s.
    marker = tmp_path / "ran"
    source = replaced("import socket", f"import socket, pathlib, time\npathlib.Path({str(marker)!r}).touch()\n"
                                       "t = time.monotonic()\nwhile time.monotonic() - t < 60: pass")
    started = time.monotonic()
    check_file(write(tmp_path, source))
    assert time.monotonic() - started < 2.0
    assert not marker.exists()


@pytest.mark.parametrize(("example", "framing"), [
    ("careful.py", "length-prefixed"), ("howto_fixed.py", "fixed"), ("single_recv.py", "length-prefixed"),
    ("raises_at_import.py", "length-prefixed"), ("hangs_at_import.py", "length-prefixed"),
])
def test_the_runnable_examples_pass_the_static_check(example: str, framing: str) -> None:
    # hangs_at_import.py busy-loops for 120 s when imported: passing here also proves it was not.
    assert check_file(EXAMPLES / example).framing == framing


@pytest.mark.parametrize(("example", "message"), [
    ("syntax_error.py", "syntax_error.py: syntax error at line 16: expected ':'"),
    ("missing_myreceive.py", "missing_myreceive.py: MySocket has no method myreceive(self); required: "
                             "connect(host, port), mysend(msg), myreceive(), optionally close()"),
])
def test_the_broken_examples_are_refused_with_the_reason(example: str, message: str) -> None:
    with pytest.raises(InvalidSubmission) as info:
        check_file(EXAMPLES / example)
    assert str(info.value) == message


BAD_SOURCES = {
    "no class": (replaced("class MySocket:", "class TheirSocket:"),
                 "mine.py: no module-level class MySocket; a submission defines class MySocket with "
                 "connect(host, port), mysend(msg), myreceive() and optionally close()"),
    "no FRAMING": (replaced('FRAMING = "length-prefixed"', ""),
                   "mine.py: no module-level FRAMING; declare FRAMING = \"fixed\" (with MSGLEN = <int >= 29>) "
                   "or FRAMING = \"length-prefixed\""),
    "unknown FRAMING": (replaced('"length-prefixed"', '"json-lines"'),
                        "mine.py: FRAMING must be one of 'fixed', 'length-prefixed'; got 'json-lines'"),
    "FRAMING not a literal": (replaced('FRAMING = "length-prefixed"', 'KIND = "fixed"\nFRAMING = KIND'),
                              "mine.py: line 4: FRAMING must be a literal (a string), so it can be read without "
                              "running the file"),
    "fixed without MSGLEN": (replaced('"length-prefixed"', '"fixed"'),
                             "mine.py: FRAMING 'fixed' needs MSGLEN, an int from 29 (a DATA frame's 5-byte header, "
                             "8-byte sequence number and a 16-byte body the lab can check) to 1048576; got None"),
    "MSGLEN too small": (replaced('"length-prefixed"', '"fixed"\nMSGLEN = 12'),
                         "mine.py: FRAMING 'fixed' needs MSGLEN, an int from 29 (a DATA frame's 5-byte header, "
                         "8-byte sequence number and a 16-byte body the lab can check) to 1048576; got 12"),
    "MSGLEN a string": (replaced('"length-prefixed"', '"fixed"\nMSGLEN = "1024"'),
                        "mine.py: FRAMING 'fixed' needs MSGLEN, an int from 29 (a DATA frame's 5-byte header, "
                        "8-byte sequence number and a 16-byte body the lab can check) to 1048576; got '1024'"),
    "MSGLEN a bool": (replaced('"length-prefixed"', '"fixed"\nMSGLEN = True'),
                      "mine.py: FRAMING 'fixed' needs MSGLEN, an int from 29 (a DATA frame's 5-byte header, "
                      "8-byte sequence number and a 16-byte body the lab can check) to 1048576; got True"),
    "third-party import": (replaced("import socket", "import socket\nimport requests"),
                           "mine.py: line 3: imports 'requests', which is not in the standard library; "
                           "submissions may import the standard library only"),
    "the lab's own code": (replaced("import socket", "from lab.sockets.naive import LengthPrefixedSocket"),
                           "mine.py: line 2: imports 'lab.sockets.naive', which is not in the standard library; "
                           "submissions may import the standard library only"),
    "relative import": (replaced("import socket", "from . import helpers"),
                        "mine.py: line 2: relative import; a submission is one file and may import the standard "
                        "library only"),
    "__init__ needs an argument": (replaced("def __init__(self, sock=None):", "def __init__(self, msglen, sock=None):"),
                                   "mine.py: line 6: MySocket.__init__ cannot be called as MySocket(): it also "
                                   "requires msglen (give it a default, as in sock=None)"),
    "connect takes one address": (replaced("def connect(self, host, port):", "def connect(self, address):"),
                                  "mine.py: line 9: MySocket.connect cannot be called as connect(self, host, port): "
                                  "it takes 2 positional parameters (self included), the lab passes 3"),
    "keyword-only parameter": (replaced("def mysend(self, msg):", "def mysend(self, msg, *, flags):"),
                               "mine.py: line 12: MySocket.mysend cannot be called as mysend(self, msg): it requires "
                               "keyword-only flags"),
    "async myreceive": (replaced("def myreceive(self):", "async def myreceive(self):"),
                        "mine.py: line 15: MySocket.myreceive is 'async def'; the lab calls it as a plain blocking "
                        "method"),
    "close with a parameter": (replaced("def close(self):", "def close(self, how):"),
                               "mine.py: line 18: MySocket.close cannot be called as close(self): it also requires "
                               "how (give it a default, as in sock=None)"),
    "missing mysend": (replaced("def mysend(self, msg):", "def send_it(self, msg):"),
                       "mine.py: MySocket has no method mysend(self, msg); required: connect(host, port), mysend(msg), "
                       "myreceive(), optionally close()"),
    "compile-time error": (GOOD_SOURCE + "\nreturn 1\n",
                           "mine.py: syntax error at line 21: 'return' outside function"),
}


@pytest.mark.parametrize("case", sorted(BAD_SOURCES))
def test_a_broken_contract_is_refused_saying_what_and_what_is_accepted(tmp_path: Path, case: str) -> None:
    source, message = BAD_SOURCES[case]
    with pytest.raises(InvalidSubmission) as info:
        check_file(write(tmp_path, source))
    assert str(info.value) == message


# The HOWTO's class exactly as the HOWTO prints it, with the MSGLEN it leaves to the reader and no FRAMING.
HOWTO_SOURCE = '''
import socket

MSGLEN = 1024


class MySocket:
    """demonstration class only
      - coded for clarity, not efficiency
    """

    def __init__(self, sock=None):
        if sock is None:
            self.sock = socket.socket(
                            socket.AF_INET, socket.SOCK_STREAM)
        else:
            self.sock = sock

    def connect(self, host, port):
        self.sock.connect((host, port))

    def mysend(self, msg):
        totalsent = 0
        while totalsent < MSGLEN:
            sent = self.sock.send(msg[totalsent:])
            if sent == 0:
                raise RuntimeError("socket connection broken")
            totalsent = totalsent + sent

    def myreceive(self):
        chunks = []
        bytes_recd = 0
        while bytes_recd < MSGLEN:
            chunk = self.sock.recv(min(MSGLEN - bytes_recd, 2048))
            if chunk == b'':
                raise RuntimeError("socket connection broken")
            chunks.append(chunk)
            bytes_recd = bytes_recd + len(chunk)
        return b''.join(chunks)
'''
IMPLIED = "FRAMING not set: graded as fixed-length MSGLEN messages, as the HOWTO's class is written"


def test_the_howto_class_with_msglen_and_no_framing_is_graded_as_fixed_length(tmp_path: Path) -> None:
    path = write(tmp_path, HOWTO_SOURCE)
    info = check_file(path)
    assert (info.framing, info.msglen, info.notes) == ("fixed", 1024, (IMPLIED,))
    assert submission.IMPLIED_FIXED_NOTE == IMPLIED
    # The in-lab loader reads the file the same way.
    loaded = pyloader.load_file(path)
    assert (loaded.framing, loaded.msglen, loaded.note) == ("fixed", 1024, IMPLIED)


@pytest.mark.parametrize(("declared", "framing", "msglen"), [
    ('FRAMING = "fixed"\nMSGLEN = 1024', "fixed", 1024),
    ('FRAMING = "length-prefixed"\nMSGLEN = 1024', "length-prefixed", None),
    ('FRAMING = "length-prefixed"', "length-prefixed", None),
])
def test_an_explicit_framing_is_read_as_declared_without_a_note(tmp_path: Path, declared: str, framing: str,
                                                                 msglen: int | None) -> None:
    path = write(tmp_path, replaced('FRAMING = "length-prefixed"', declared))
    info = check_file(path)
    assert (info.framing, info.msglen, info.notes) == (framing, msglen, ())
    loaded = pyloader.load_file(path)
    assert (loaded.framing, loaded.msglen, loaded.note) == (framing, msglen, None)


@pytest.mark.parametrize(("source", "message"), [
    (replaced('FRAMING = "length-prefixed"', ""),
     "mine.py: no module-level FRAMING; declare FRAMING = \"fixed\" (with MSGLEN = <int >= 29>) or "
     "FRAMING = \"length-prefixed\""),
    (HOWTO_SOURCE.replace("MSGLEN = 1024", "MSGLEN = 12"),
     "mine.py: FRAMING not set, so MSGLEN means fixed-length messages and must be an int from 29 (a DATA frame's "
     "5-byte header, 8-byte sequence number and a 16-byte body the lab can check) to 1048576; got 12 (or declare "
     "FRAMING = \"length-prefixed\")"),
])
def test_without_framing_the_host_and_the_loader_refuse_alike(tmp_path: Path, source: str, message: str) -> None:
    path = write(tmp_path, source)
    with pytest.raises(InvalidSubmission) as static:
        check_file(path)
    assert str(static.value) == message
    with pytest.raises(submission.SubmissionLoadFailed) as loaded:
        pyloader.load_file(path)
    assert (loaded.value.error, loaded.value.message) == ("ContractError", message)


def test_methods_inherited_from_a_class_in_the_same_file_count(tmp_path: Path) -> None:
    source = replaced("class MySocket:", "class Base:\n    def myreceive(self):\n        return b''\n\n"
                                         "class MySocket(Base):").replace("    def myreceive(self):\n"
                                                                          "        return self.sock.recv(65536)\n", "")
    assert check_file(write(tmp_path, source)).framing == "length-prefixed"


def test_a_base_class_from_elsewhere_leaves_missing_methods_to_the_lab(tmp_path: Path) -> None:
    source = replaced("class MySocket:", "class MySocket(socket.socket):").replace(
        "    def myreceive(self):\n        return self.sock.recv(65536)\n", "")
    assert check_file(write(tmp_path, source)).framing == "length-prefixed"


def test_files_that_are_not_one_python_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidSubmission, match=r"nothing\.py: no such file"):
        check_file(tmp_path / "nothing.py")
    with pytest.raises(InvalidSubmission, match="not a regular file; a submission is one Python file"):
        check_file(tmp_path)
    with pytest.raises(InvalidSubmission, match=r"a submission is a Python file whose name ends in \.py"):
        check_file(write(tmp_path, GOOD_SOURCE, "mine.txt"))
    big = write(tmp_path, GOOD_SOURCE + "#" * MAX_BYTES, "big.py")
    with pytest.raises(InvalidSubmission, match=rf"bytes; a submission is at most {MAX_BYTES} bytes"):
        check_file(big)


# Implementation names and the in-lab loader -------------------------------------------------------
@pytest.mark.parametrize("impl", ["sandbox:mine", "sandbox:My_code-2", "sandbox:" + "x" * 64])
def test_submission_paths_that_are_accepted(impl: str) -> None:
    assert submission.parse_impl(impl) == impl.removeprefix("sandbox:")


@pytest.mark.parametrize("impl", [
    "sandbox:../etc/passwd", "sandbox:/tmp/mine", "sandbox:a/b", "sandbox:mine.py", "sandbox:-rf", "sandbox:",
    "sandbox:_x", "sandbox:" + "x" * 65, "sandbox:a b", "sandbox:mine\n", "file:/tmp/submissions/mine.py", "mine",
])
def test_submission_paths_that_are_refused(impl: str) -> None:
    with pytest.raises(submission.SubmissionError, match=r"use sandbox:NAME, where NAME is 1 "
                                                         "to 64 letters"):
        submission.parse_impl(impl)


def test_the_loader_imports_into_a_fresh_module_each_time(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_SOURCE.replace("import socket", "import socket\nCOUNT = []"))
    first, second = pyloader.load_file(path), pyloader.load_file(path)
    assert first.cls is not second.cls
    assert first.cls.__module__ != second.cls.__module__
    assert (first.framing, first.msglen) == ("length-prefixed", None)


def test_the_loader_reports_an_import_time_exception_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_SOURCE.replace("import socket", "import socket\nraise RuntimeError('no config')"))
    with pytest.raises(submission.SubmissionLoadFailed) as info:
        pyloader.load_file(path)
    assert (info.value.status, info.value.error) == ("error", "RuntimeError")
    assert info.value.message == "RuntimeError while importing mine.py at line 3: no config"


def test_the_loader_gives_up_on_an_import_that_does_not_return(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_SOURCE.replace("import socket", "import socket, time\ntime.sleep(3)"))
    started = time.monotonic()
    with pytest.raises(submission.SubmissionLoadFailed) as info:
        pyloader.load_file(path, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert (info.value.status, info.value.error) == ("blocked", "ImportTimeout")
    assert "did not finish within 0.3 s" in info.value.message


def test_the_loader_checks_the_contract_on_the_imported_class(tmp_path: Path) -> None:
    # Only visible at run time: the class is made dynamically, without myreceive.
    source = GOOD_SOURCE.replace("class MySocket:", "class _Made:") + \
        "\nMySocket = type('MySocket', (), {k: v for k, v in vars(_Made).items() if k != 'myreceive'})\n"
    with pytest.raises(submission.SubmissionLoadFailed) as info:
        pyloader.load_file(write(tmp_path, source))
    assert (info.value.error, info.value.message) == ("ContractError", "mine.py: MySocket has no method "
                                                                       "myreceive(self)")


# The runner's side: which scenarios grade, and a file that cannot be loaded ------------------------------
def test_the_runner_refuses_to_grade_on_a_robust_only_scenario_listing_the_gradable_ones() -> None:
    with pytest.raises(scenario.ScenarioError) as info:
        runner._unjudged_impls(SCENARIOS["half-close"], ["robust", "sandbox:mine"])
    gradable = sorted(name for name, s in SCENARIOS.items() if "naive" in s.expect and not s.not_gradable)
    assert "failover" not in gradable
    assert str(info.value) == ("scenario half-close cannot grade sandbox:mine: it judges only "
                               "robust, with workers that drive the robust connection itself; scenarios that can "
                               f"grade any code: {', '.join(gradable)}")
    assert {"clean-close", "frozen-process", "fragmentation"} <= set(gradable)
    assert not {"half-close", "slow-close", "multiplexed-peer-death"} & set(gradable)


def test_a_scenario_that_judges_naive_but_hands_out_two_addresses_grades_nobody_and_says_why() -> None:
    reason = ("graded code is handed one server address (the submission interface connects to one host), so it "
              "has nowhere to fail over to")
    assert SCENARIOS["failover"].not_gradable == reason and "naive" in SCENARIOS["failover"].expect
    with pytest.raises(scenario.ScenarioError) as info:
        runner._unjudged_impls(SCENARIOS["failover"], ["robust", "naive", "sandbox:mine"])
    assert str(info.value).startswith(f"scenario failover cannot grade sandbox:mine: {reason}; scenarios that can "
                                      f"grade any code: ")
    assert "failover" not in grading.gradable(SCENARIOS)
    with pytest.raises(grading.GradeError, match="^" + re.escape(f"scenario 'failover' cannot grade other code: {reason}; gradable ")):
        grading.choose(["failover"], SCENARIOS)


def test_the_runner_accepts_files_and_unjudged_builtins_on_gradable_scenarios() -> None:
    impls = ["robust", "naive", "naive-fixed", "sandbox:mine"]
    assert runner._unjudged_impls(SCENARIOS["clean-close"], impls) == ["naive-fixed", "sandbox:mine"]
    with pytest.raises(scenario.ScenarioError, match="is not an accepted submission"):
        runner._unjudged_impls(SCENARIOS["clean-close"], ["sandbox:../etc/passwd"])


def test_a_program_that_cannot_get_ready_is_reported_and_the_scenario_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.inlab import remote
    from lab.inlab.submission import SubmissionLoadFailed

    def probe(impl: str, **_: Any) -> Any:
        raise SubmissionLoadFailed("error", "ZeroDivisionError", "ZeroDivisionError while importing mine.py at line 3")

    monkeypatch.setattr(remote, "probe", probe)
    impl = "sandbox:mine_5e1f0000"
    rep = runner.run(SCENARIOS["clean-close"], ["robust", impl])   # no lab is touched: the probe comes first
    assert rep["verdicts"] == {} and rep["fidelity"] == [] and rep["ok"] is False and rep["aborted"] is None
    assert rep["facts"]["not_run"] == f"not run: {impl} could not be loaded"
    outcome = rep["submissions"][impl]["outcome"]
    assert (outcome["status"], outcome["error"], outcome["facts"]) == ("error", "ZeroDivisionError",
                                                                       {"phase": "import"})


def test_a_sandbox_that_does_not_answer_aborts_the_run_as_the_labs_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.inlab import remote

    def probe(impl: str, **_: Any) -> Any:
        raise remote.DriverUnavailable("nothing listens on 127.0.0.1:7900 after 15 s")

    monkeypatch.setattr(remote, "probe", probe)
    rep = runner.run(SCENARIOS["clean-close"], ["robust", "sandbox:mine_5e1f0000"])
    assert rep["ok"] is False and rep["verdicts"] == {}
    assert rep["aborted"] == ("the sandbox did not answer on the driver port: nothing listens on 127.0.0.1:7900 "
                              "after 15 s")


# The verdict rules ------------------------------------------------------------------------------------------
COMPLETES = Expect("completed")
REPORTS = Expect("error", ("PeerClosed",), within=1.0)


def outcome(status: str, *, error: str | None = None, ended_at: float | None = None, corrupt: int = 0,
            exchanges_ok: int = 2, message: str = "", facts: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"status": status, "error": error, "ended_at": ended_at, "corrupt": corrupt, "exchanges_ok": exchanges_ok,
            "message": message, "facts": facts or {}}


FAULT = 10.0   # the fault happened 10 s into the run: times are measured from it


@pytest.mark.parametrize(("robust", "got", "verdict"), [
    (COMPLETES, outcome("completed", ended_at=FAULT + 1), gv.SURVIVED),
    (COMPLETES, outcome("completed", ended_at=FAULT + 1, corrupt=1), gv.CORRUPT),
    (COMPLETES, outcome("error", error="RuntimeError", ended_at=FAULT + 0.1), gv.NO_RECOVERY),
    (COMPLETES, outcome("blocked"), gv.HUNG),
    (REPORTS, outcome("error", error="RuntimeError", ended_at=FAULT + 0.2), gv.REPORTED),
    (REPORTS, outcome("error", error="TimeoutError", ended_at=FAULT + 1.5), gv.REPORTED),     # bound + slack
    (REPORTS, outcome("error", error="TimeoutError", ended_at=FAULT + 1.6), gv.LATE),
    (REPORTS, outcome("blocked"), gv.HUNG),
    (REPORTS, outcome("completed", ended_at=FAULT + 0.2, corrupt=1), gv.CORRUPT),
    (REPORTS, outcome("completed", ended_at=FAULT + 0.2), gv.MISSED),
    (REPORTS, outcome("error", error="RuntimeError", ended_at=FAULT + 0.2, corrupt=1), gv.CORRUPT),
    (REPORTS, outcome("error", error="AttributeError", ended_at=FAULT + 0.2), gv.CRASHED),
    (REPORTS, outcome("error", error="RuntimeError", ended_at=FAULT - 0.5), gv.CRASHED),
    (REPORTS, outcome("error", error="KeyError", facts={"phase": "import"}), gv.CRASHED),
    (REPORTS, outcome("blocked", error="ImportTimeout", facts={"phase": "import"}), gv.HUNG),
    (Expect("error", ("PeerClosed",)), outcome("error", error="OSError", ended_at=FAULT + 10.4), gv.REPORTED),
    (Expect("error", ("PeerClosed",)), outcome("error", error="OSError", ended_at=FAULT + 10.6), gv.LATE),
])
def test_verdict_rules(robust: Expect, got: dict[str, Any], verdict: str) -> None:
    assert gv.decide(robust, got, fault_at=FAULT, watchdog=10.0).verdict == verdict


def test_an_error_before_careful_code_saw_the_failure_is_a_crash() -> None:
    early = outcome("error", error="ConnectionResetError", ended_at=FAULT + 0.1, exchanges_ok=1)
    v = gv.decide(REPORTS, early, fault_at=FAULT, watchdog=10.0, reference_exchanges=2)
    assert v.verdict == gv.CRASHED
    assert v.reason == "raised ConnectionResetError after 1 intact replies; careful code got 2 before the failure"
    assert gv.decide(REPORTS, early, fault_at=FAULT, watchdog=10.0, reference_exchanges=1).verdict == gv.REPORTED


def test_a_hung_verdict_quotes_the_runner_saying_where_it_was_stuck() -> None:
    at_watchdog = gv.decide(REPORTS, outcome("blocked"), fault_at=FAULT, watchdog=5.0)
    assert at_watchdog.reason == ("still inside a call at the watchdog (5 s after the fault); careful code reports "
                                  "PeerClosed within 1 s")
    aborted = gv.decide(REPORTS, outcome("blocked", message="still inside a call when the run was aborted"),
                        fault_at=FAULT, watchdog=5.0)
    assert aborted.reason == "still inside a call when the run was aborted; careful code reports PeerClosed within 1 s"


def test_verdicts_carry_their_evidence() -> None:
    v = gv.decide(REPORTS, outcome("error", error="TimeoutError", message="timed out", ended_at=FAULT + 1.75),
                  fault_at=FAULT, watchdog=10.0)
    assert (v.verdict, v.took_s, v.bound_s) == (gv.LATE, 1.75, 1.5)
    assert v.reason == ("raised TimeoutError: timed out, 1.75 s after the fault; bound 1.5 s "
                        "(careful code reports PeerClosed within 1 s)")
    v = gv.decide(REPORTS, outcome("error", error="KeyError", message="KeyError while importing x.py at line 3: 'A'",
                                   facts={"phase": "import"}), fault_at=None, watchdog=10.0)
    assert v.reason == "could not be loaded: KeyError while importing x.py at line 3: 'A'"


# The scenarios' own predictions, through the same rules --------------------------------------------------
GRADABLE = grading.gradable(SCENARIOS)


@pytest.mark.parametrize("name", sorted(n for n, s in SCENARIOS.items() if "robust" in s.expect))
def test_robust_is_predicted_to_handle_every_scenario(name: str) -> None:
    # (A scenario that judges server code, restart-without-reuseaddr, has no robust client to predict.)
    assert gv.predicted(SCENARIOS[name], "robust").verdict in gv.GOOD


@pytest.mark.parametrize("name", sorted(GRADABLE))
def test_naive_predictions_follow_its_oracle(name: str) -> None:
    s = SCENARIOS[name]
    naive, robust = s.expect["naive"], s.expect["robust"]
    verdict = gv.predicted(s, "naive").verdict
    if naive.status == "blocked":
        assert verdict == gv.HUNG
    elif naive.corrupt:
        assert verdict == gv.CORRUPT
    elif naive.status == robust.status == "completed":
        assert verdict == gv.SURVIVED
    elif naive.status == "error" and robust.status == "completed":
        assert verdict == gv.NO_RECOVERY   # it reports the failure; careful code reconnects
    elif naive.status == robust.status == "error":
        within = naive.within if naive.within is not None else (s.watchdog or gv.DEFAULT_WATCHDOG_S) / 2
        bound = (robust.within if robust.within is not None else s.watchdog or 10) + gv.SLACK_S
        assert verdict == (gv.REPORTED if within <= bound else gv.LATE)
    else:
        assert verdict == gv.MISSED


@pytest.mark.parametrize(("name", "impl", "verdict"), [
    ("frozen-process", "naive", gv.HUNG), ("host-vanishes", "naive", gv.HUNG), ("backpressure", "naive", gv.HUNG),
    ("clean-close", "naive", gv.REPORTED), ("refused", "naive", gv.REPORTED), ("reset", "naive", gv.REPORTED),
    ("mid-message-cut", "naive", gv.REPORTED), ("fragmentation", "naive", gv.SURVIVED),
    ("server-restart", "naive", gv.NO_RECOVERY), ("fragmentation", "naive-single-recv", gv.CORRUPT),
    ("clean-close", "robust", gv.REPORTED), ("fragmentation", "robust", gv.SURVIVED),
])
def test_named_predictions(name: str, impl: str, verdict: str) -> None:
    assert gv.predicted(SCENARIOS[name], impl).verdict == verdict


# Reading a runner report --------------------------------------------------------------------------------------
FILE = "sandbox:mine-0001"


def report(sub: dict[str, Any] | None = None, *, robust: dict[str, Any] | None = None, aborted: str | None = None,
           fidelity_ok: bool = True, not_run: bool = False, naive: dict[str, Any] | None = None) -> dict[str, Any]:
    fidelity = [{"name": "the server sent a FIN", "ok": fidelity_ok, "detail": "FIN 1"}]
    verdicts = {"robust": {"ok": True, "checks": [], "outcome": robust or outcome("error", error="PeerClosed",
                                                                                    ended_at=FAULT + 0.1)}}
    if naive is not None:
        verdicts["naive"] = {"ok": True, "checks": [], "outcome": naive}
    # A whole report of the runner's schema (lab.inlab.runreport checks it on the way in).
    return {"schema_version": runreport.SCHEMA_VERSION, "scenario": {"name": "clean-close"}, "ok": not aborted,
            "timeline": [], "bounds": {},
            "fault_at": FAULT, "watchdog_s": 10.0, "aborted": aborted, "fidelity": [] if not_run else fidelity,
            "fidelity_ok": fidelity_ok and not not_run, "facts": {"not_run": "not run"} if not_run else {},
            "verdicts": {} if not_run else verdicts,
            "submissions": {FILE: {"judged": False, "checks": [], "outcome": sub}} if sub else {}}


def test_a_report_gives_the_submission_its_verdict_and_evidence() -> None:
    r = grading.result_from_report(SCENARIOS["clean-close"], FILE,
                                   report(outcome("error", error="RuntimeError", ended_at=FAULT + 0.05)))
    assert (r.verdict, r.error, r.took_s, r.bound_s, r.fault_proven) == (gv.REPORTED, "RuntimeError", 0.05, 1.0, True)
    assert r.fidelity == [{"name": "the server sent a FIN", "ok": True, "detail": "FIN 1"}]
    assert r.careful == "careful code reports PeerClosed within 0.5 s"


def test_a_builtin_is_read_from_the_judged_verdicts() -> None:
    r = grading.result_from_report(SCENARIOS["clean-close"], "naive",
                                   report(naive=outcome("error", error="RuntimeError", ended_at=FAULT + 0.05)))
    assert r.verdict == gv.REPORTED


def test_an_unproven_fault_makes_a_good_verdict_inconclusive_but_keeps_a_bad_one() -> None:
    good = grading.result_from_report(SCENARIOS["clean-close"], FILE, report(
        outcome("error", error="RuntimeError", ended_at=FAULT + 0.05), fidelity_ok=False))
    assert good.verdict == gv.INCONCLUSIVE and "the fault was not proven (the server sent a FIN: FIN 1)" in good.reason
    bad = grading.result_from_report(SCENARIOS["clean-close"], FILE, report(outcome("blocked"), fidelity_ok=False))
    assert bad.verdict == gv.HUNG and "note: the fault was not proven" in bad.reason


def test_an_aborted_run_is_inconclusive_unless_the_submission_was_stuck() -> None:
    r = grading.result_from_report(SCENARIOS["clean-close"], FILE, report(outcome("completed"), aborted="agent down"))
    assert (r.verdict, r.reason) == (gv.INCONCLUSIVE, "the lab could not carry out the scenario: agent down")
    r = grading.result_from_report(SCENARIOS["clean-close"], FILE, report(outcome("blocked"), aborted="no fault"))
    assert r.verdict == gv.HUNG


def test_fewer_intact_replies_than_careful_code_in_the_same_run_is_a_crash() -> None:
    r = grading.result_from_report(SCENARIOS["clean-close"], FILE, report(
        outcome("error", error="RuntimeError", ended_at=FAULT + 0.05, exchanges_ok=0)))
    assert r.verdict == gv.CRASHED


def test_the_runner_marks_a_submission_still_running_at_an_abort_as_blocked() -> None:
    ctx = runner.Context(SCENARIOS["clean-close"], ["robust", FILE])
    ctx.unjudged = [FILE]
    reps = runner._submission_reports(ctx, "workers did not reach the fault point")
    assert reps[FILE]["outcome"]["status"] == "blocked"
    assert reps[FILE]["judged"] is False


# grade() against a recorded lab ---------------------------------------------------------------------------------
class RecordingLab:
    """Answers exec calls like the lab would; every call is kept for the assertions."""

    def __init__(self, outcomes: dict[str, dict[str, Any]] | None = None) -> None:
        self.calls: list[tuple[list[str], bytes | None]] = []
        self.outcomes = outcomes or {}

    def exec(self, service: str, argv: list[str], *, timeout: float = 60.0, stdin: bytes | None = None,
             **_: Any) -> Result:
        assert service == "client"
        self.calls.append((list(argv), stdin))
        if argv[:3] != ["python3", "-m", "lab.inlab.runner"]:
            return Result(0)
        name = argv[4]
        impls = [argv[i + 1] for i, a in enumerate(argv) if a == "--impl"]
        sub = next((i for i in impls if i != "robust"), None)
        got = self.outcomes.get(name, outcome("error", error="RuntimeError", ended_at=FAULT + 0.05))
        rep = report(got if sub and sub.startswith("sandbox:") else None, not_run=got["facts"].get("phase") == "import")
        if sub and sub.startswith("sandbox:"):
            rep["submissions"] = {sub: {"judged": False, "checks": [], "outcome": got}}
        return Result(1, "some output\n" + json.dumps(rep) + "\n")

    def sandbox(self, lab: Any, info: Any) -> "FakeSandbox":
        """Stands in for lab.host.sandbox.Sandbox: records that one was made and removed, around each run."""
        return FakeSandbox(self, info)


class FakeSandbox:
    count = 0

    def __init__(self, lab: RecordingLab, info: Any) -> None:
        FakeSandbox.count += 1
        self.lab, self.info = lab, info
        self.impl = f"sandbox:{info.path.stem}_{FakeSandbox.count:08x}"

    def __enter__(self) -> "FakeSandbox":
        self.lab.calls.append((["sandbox", "start", self.impl, self.info.kind], self.info.path.read_bytes()))
        return self

    def __exit__(self, *exc: object) -> None:
        self.lab.calls.append((["sandbox", "remove", self.impl], None))


def grade_in(lab: RecordingLab, path: Any, **kwargs: Any) -> grading.ReportCard:
    return grading.grade(lab, path, sandbox=lab.sandbox, **kwargs)  # type: ignore[arg-type]


def test_an_invalid_file_never_reaches_the_lab() -> None:
    lab = RecordingLab()
    card = grading.grade(lab, EXAMPLES / "syntax_error.py")  # type: ignore[arg-type]
    assert lab.calls == []
    assert (card.verdict, card.valid, card.results) == ("invalid", False, [])
    assert card.reason == "syntax_error.py: syntax error at line 16: expected ':'"


def test_grade_runs_each_scenario_in_a_sandbox_of_its_own_beside_robust() -> None:
    lab = RecordingLab({"frozen-process": outcome("blocked")})
    card = grade_in(lab, EXAMPLES / "careful.py", scenarios=["clean-close", "frozen-process"], watchdog=5)
    start1, first, remove1, start2, second, remove2 = lab.calls
    impl1, impl2 = start1[0][2], start2[0][2]
    assert start1 == (["sandbox", "start", impl1, "python"], (EXAMPLES / "careful.py").read_bytes())
    assert impl1 != impl2 and impl1.startswith("sandbox:careful_") and impl2.startswith("sandbox:careful_")
    assert first[0] == ["python3", "-m", "lab.inlab.runner", "run", "clean-close", "--json", "--impl", "robust",
                        "--impl", impl1, "--watchdog", "5"]
    assert remove1[0] == ["sandbox", "remove", impl1]
    assert second[0][4] == "frozen-process" and second[0][9] == impl2
    assert remove2[0] == ["sandbox", "remove", impl2]
    assert card.impl == "sandbox (python, python)"
    assert [(r.scenario, r.verdict) for r in card.results] == [("clean-close", gv.REPORTED),
                                                                ("frozen-process", gv.HUNG)]
    assert card.verdict == "failed" and card.totals() == {gv.REPORTED: 1, gv.HUNG: 1}


def test_a_file_that_cannot_be_imported_is_run_once_and_its_sandbox_still_removed() -> None:
    failed = outcome("blocked", error="ImportTimeout", message="did not finish within 5 s", facts={"phase": "import"})
    lab = RecordingLab({name: failed for name in GRADABLE})
    card = grade_in(lab, EXAMPLES / "hangs_at_import.py", scenarios=["clean-close", "refused", "reset"])
    runs = [argv for argv, _ in lab.calls if argv[:3] == ["python3", "-m", "lab.inlab.runner"]]
    assert len(runs) == 1
    assert lab.calls[-1][0][:2] == ["sandbox", "remove"]
    assert [r.verdict for r in card.results] == [gv.HUNG] * 3
    assert card.results[2].reason == "not run: never finished importing: did not finish within 5 s"


def test_builtins_are_graded_by_name_without_an_upload() -> None:
    lab = RecordingLab()
    card = grading.grade(lab, "robust", scenarios=["clean-close"])  # type: ignore[arg-type]
    assert [argv for argv, _ in lab.calls] == [["python3", "-m", "lab.inlab.runner", "run", "clean-close", "--json",
                                                 "--impl", "robust"]]
    assert card.results[0].verdict == gv.REPORTED


def test_scenarios_that_cannot_grade_are_refused_before_anything_runs() -> None:
    lab = RecordingLab()
    with pytest.raises(grading.GradeError, match="scenario 'half-close' judges only robust, with workers that drive "
                                                 "the robust connection itself, so it cannot grade other code; "
                                                 "gradable scenarios: backlog-full, "):
        grading.grade(lab, EXAMPLES / "careful.py", scenarios=["half-close"])  # type: ignore[arg-type]
    with pytest.raises(grading.GradeError, match="no scenario named 'nope'; gradable scenarios: "):
        grading.grade(lab, EXAMPLES / "careful.py", scenarios=["nope"])  # type: ignore[arg-type]
    assert lab.calls == []


# The report card ------------------------------------------------------------------------------------------------
def sample_card() -> grading.ReportCard:
    lab = RecordingLab({"frozen-process": outcome("blocked"),
                        "fragmentation": outcome("completed", ended_at=FAULT + 1, exchanges_ok=4)})
    return grade_in(lab, EXAMPLES / "careful.py", scenarios=["clean-close", "fragmentation", "frozen-process"])


def test_the_text_card_is_a_table_with_totals_and_fault_evidence() -> None:
    text = grading.render_text(sample_card())
    lines = text.splitlines()
    assert lines[0] == "Report card: " + str(EXAMPLES / "careful.py") + ", length-prefixed"
    header = next(line for line in lines if line.startswith("scenario"))
    assert header.split() == ["scenario", "verdict", "time", "/", "bound", "evidence"]
    row = next(line for line in lines if line.startswith("clean-close "))
    assert "reported correctly" in row and "0.05 s / 1 s" in row
    assert "FAILED: 2 of 3 scenarios handled correctly (survived 1, reported correctly 1, hung 1)" in lines
    assert "  frozen-process: careful code reports PeerUnresponsive within 4 s; fault proven" in lines
    assert "    [ok] the server sent a FIN: FIN 1" in lines


def test_the_markdown_card_escapes_cells() -> None:
    card = sample_card()
    card.results[0].reason = "a | b"
    md = grading.render_markdown(card)
    assert "| Scenario | Verdict | Time / bound | Evidence |" in md
    assert "| clean-close | **reported correctly** | 0.05 s / 1 s | a \\| b |" in md
    assert "**FAILED: 2 of 3 scenarios handled correctly (survived 1, reported correctly 1, hung 1)**" in md


def test_the_json_card_round_trips() -> None:
    data = json.loads(json.dumps(sample_card().as_dict()))
    assert data["verdict"] == "failed" and data["framing"] == "length-prefixed"
    assert data["totals"] == {gv.SURVIVED: 1, gv.REPORTED: 1, gv.HUNG: 1}
    assert [r["verdict"] for r in data["results"]] == [gv.REPORTED, gv.SURVIVED, gv.HUNG]
    assert set(data["results"][0]) >= {"scenario", "verdict", "reason", "careful", "error", "took_s", "bound_s",
                                       "fault_proven", "fidelity"}


def test_the_card_of_a_file_without_framing_carries_the_note(tmp_path: Path) -> None:
    card = grade_in(RecordingLab(), write(tmp_path, HOWTO_SOURCE), scenarios=["clean-close"])
    assert (card.framing, card.msglen, card.notes) == ("fixed", 1024, [IMPLIED])
    assert grading.render_text(card).splitlines()[:2] == [f"Report card: {tmp_path / 'mine.py'}, fixed MSGLEN=1024",
                                                          f"note: {IMPLIED}"]
    assert f"Note: {IMPLIED}" in grading.render_markdown(card)
    assert card.as_dict()["notes"] == [IMPLIED]
    assert grade_in(RecordingLab(), EXAMPLES / "careful.py", scenarios=["clean-close"]).notes == []


def test_invalid_card_needs_no_lab_and_answers_only_for_refused_files() -> None:
    card = grading.invalid_card(EXAMPLES / "syntax_error.py")
    assert card is not None and (card.verdict, card.valid, card.results) == ("invalid", False, [])
    assert card.reason == "syntax_error.py: syntax error at line 16: expected ':'"
    assert grading.invalid_card(EXAMPLES / "careful.py") is None
    assert grading.invalid_card("robust") is None


def test_an_invalid_card_renders_its_reason() -> None:
    card = grading.grade(RecordingLab(), EXAMPLES / "missing_myreceive.py")  # type: ignore[arg-type]
    assert grading.render_text(card).splitlines()[1:] == [f"INVALID: {card.reason}", "nothing was sent to the lab"]
    assert "**Invalid**: missing_myreceive.py: MySocket has no method myreceive(self)" in grading.render_markdown(card)
    assert card.as_dict()["verdict"] == "invalid"
