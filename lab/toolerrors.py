"""The lab tool's own errors, and the exit codes they map to.

These are the errors of the *tool* (the ``lab`` command, the in-lab runner, the
fault agent, the grader): bad input, a set-up that failed, a check that did not
hold. They are a tree of their own, apart from the *socket* errors the code
under test raises (:mod:`lab.sockets.errors`, rooted at ``LabError``), which are
what the lab observes, never how the tool fails::

    Exception
     ├── LabError (lab.sockets.errors)         the socket error tree: not this one
     └── ToolError                             exit_code 1, a failure of the tool's own
          ├── UsageError                       2  bad input: the request cannot be done as asked
          │    ├── UsageProblem                   lab.host.cli: a bad option value or combination, no such file
          │    ├── ScenarioInputError             lab.host.runner_handle: the in-lab runner refused the request
     │    ├── ImageModeError                 lab.host.engine: LAB_IMAGES names no image mode
          │    ├── UnknownScenario                lab.inlab.scenario: no scenario has that name
          │    ├── ScenarioError                  lab.inlab.scenario: a malformed scenario file, an implementation
          │    │                                  the scenario does not judge
          │    ├── SubmissionError                lab.inlab.submission: not an accepted submission name or contract
          │    ├── BadRequest                     lab.inlab.agent: a request the fault agent refuses
          │    ├── InvalidSubmission              lab.grading.static: a submitted file that breaks the contract
          │    │    └── NotElf                    a file that is not an x86-64 Linux executable
          │    ├── GradeError                     lab.grading.card: a grading request that cannot be done as asked
          │    └── CaptureError                   lab.evidence: a file that is not a readable classic pcap
          ├── SetupError                       3  Docker, Compose, the images or the lab did not do their part
          │    ├── EngineError                    lab.host.engine: no working Docker / Compose v2 / images, or
          │    │                                  the lab did not come up
          │    ├── ScenarioAbort                  lab.inlab.runner: the lab did not do what the scenario asked
          │    ├── ToxiproxyError                 lab.inlab.toxics: the Toxiproxy API failed
          │    │    └── ToxicRejected             the Toxiproxy server refused a toxic
          │    ├── AgentError                     lab.inlab.agent.client: the fault agent failed or is unreachable
          │    ├── OpFailed                       lab.inlab.agent: the namespace would not do what was asked
          │    ├── BuildError                     lab.host.build: an example program could not be built
          │    └── ReportError                    lab.inlab.runreport: a run report this lab cannot read
          └── CheckFailed                      1  what was checked did not hold
               └── SubmissionLoadFailed           lab.inlab.submission: submitted code that raised, broke the
                                                  contract or never finished importing

The ``lab`` command turns a :class:`ToolError` into its message on stderr and its
class's ``exit_code``, and nothing else: any other exception (a ``KeyError``, a
``ValueError`` from deep inside) is a bug of the tool, shown with its traceback
and exit :data:`EXIT_INTERNAL`. Ctrl-C (or SIGTERM, SIGHUP) exits :data:`EXIT_INTERRUPTED`.

Standard library only: the in-container code (the runner, the agent) raises these too.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
"""Everything held."""
EXIT_CHECK_FAILED = 1
"""An oracle or a fidelity check did not hold (a submission failed)."""
EXIT_USAGE = 2
"""Bad input: an unknown scenario, a bad option value, a bad file, a malformed scenario file."""
EXIT_SETUP = 3
"""Docker, Compose or the images could not be set up, or the lab did not come up."""
EXIT_INTERNAL = 70
"""An unexpected exception: a bug in the tool (70 is EX_SOFTWARE in sysexits.h)."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C, SIGTERM or SIGHUP (128 + SIGINT, as shells report it), after the clean-up."""


class ToolError(Exception):
    """The root of the tool's own errors; the message says what went wrong and what to do.

    Raise one of the subclasses; ``exit_code`` is what the ``lab`` command exits with.
    """

    exit_code: ClassVar[int] = EXIT_CHECK_FAILED


class UsageError(ToolError):
    """Bad input: an unknown scenario, a bad option value, a bad file, a malformed scenario file."""

    exit_code: ClassVar[int] = EXIT_USAGE


class SetupError(ToolError):
    """Docker, Compose or the images could not be set up, or the lab did not come up or do its part."""

    exit_code: ClassVar[int] = EXIT_SETUP


class CheckFailed(ToolError):
    """What was checked did not hold (an oracle, a fidelity check, a submission's contract at run time)."""

    exit_code: ClassVar[int] = EXIT_CHECK_FAILED


__all__ = [
    "EXIT_CHECK_FAILED", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_SETUP", "EXIT_USAGE",
    "CheckFailed", "SetupError", "ToolError", "UsageError",
]
