"""What can go wrong with a history database, each as one line naming it."""

from __future__ import annotations

from bench.errors import HellobenchError, UsageError


class HistoryUrlError(UsageError):
    """``--db`` is not a database URL the store can use (bad input: exit status 2)."""


class HistoryDriverMissing(UsageError):
    """The database's Python driver is not installed (exit status 2: install it)."""


class HistoryUnavailable(HellobenchError):
    """The database could not be reached or opened (exit status 1)."""


class HistorySchemaError(UsageError):
    """The database holds tables of another history schema."""


class DuplicateRunError(UsageError):
    """The run is already in the history: adding it again would count it twice."""
