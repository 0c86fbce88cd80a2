"""hellobench: kernel-space vs user-space UDP servers, measured."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# an installed wheel carries the impls inside the package (pyproject.toml's force-include)
SHIPPED_IMPLS = Path(__file__).resolve().parent / "shipped_impls"


def in_checkout() -> bool:
    """Whether this package runs from a source checkout (editable or on PYTHONPATH), not
    from an installed wheel."""
    return (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "impls").is_dir()


def work_root() -> Path:
    """Where results/ and reports/ go by default: the checkout, or for an installed tool
    the current folder."""
    return PROJECT_ROOT if in_checkout() else Path.cwd()
