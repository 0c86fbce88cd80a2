"""What every command's arguments share: a parser whose errors are usage errors, and the
argument types (positive numbers and counts, ports, CPUs, KEY=VALUE options)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from bench.errors import UsageError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError (one line, exit 2) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1..65535)")
    return int(text)


def cpu(text: str) -> int | None:
    if text in ("none", "any"):
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a CPU number (or 'none')")
    return int(text)


def key_values(pairs: Sequence[str], flag: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments as a dict; UsageError naming ``flag`` for a malformed one."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {pair!r}: expected KEY=VALUE")
        options[key] = value
    return options
