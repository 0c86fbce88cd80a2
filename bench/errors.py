"""The suite's errors and exit statuses, defined once.

Every error the suite raises on purpose derives from :class:`HellobenchError`, whose
message is one line that names the problem.  :class:`UsageError` (and what derives from it)
means the input was bad — arguments, a manifest, a results file — and ends a command with
status 2 before anything is written; any other HellobenchError that reaches the command
line is a failed measurement (status 1).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a failed measurement, a failed check, or a regression
EXIT_USAGE = 2  # bad input: one line on stderr, nothing written
EXIT_INTERRUPTED = 130  # SIGINT or SIGTERM; what the process created has been removed


class HellobenchError(Exception):
    """Something the suite could not do; the message says what and why."""


class UsageError(HellobenchError):
    """Bad input to the suite: reported as one line, exit status 2."""
