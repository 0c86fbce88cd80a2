"""The ledger cleaner for kind ``module``: unloads a module a dead run left loaded."""

from __future__ import annotations

from bench.kmod.module import rmmod
from bench.system.ledger import Record

LEDGER_KIND = "module"
CLEANER = "bench.kmod.cleanup:remove_module"


def remove_module(rec: Record) -> None:
    """rmmod the recorded module; nothing to do when it is already gone."""
    rmmod(rec.ident)
