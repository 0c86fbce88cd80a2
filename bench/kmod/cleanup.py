"""The ownership-ledger cleaner for kind ``module``: unloads a module a dead run left loaded."""

from __future__ import annotations

from bench import ownership
from bench.kmod.module import rmmod
from bench.ownership import Record

LEDGER_KIND = "module"


def remove_module(rec: Record) -> None:
    """rmmod the recorded module; nothing to do when it is already gone."""
    rmmod(rec.ident)


ownership.register_cleaner(LEDGER_KIND, remove_module)
