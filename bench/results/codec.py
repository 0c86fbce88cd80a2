"""A typed record to JSON and back, derived from its dataclass fields (one codec for the
results' rows and the run's configuration).

Writing: each field by its value (a nested record as its JSON, tuples as lists, paths as
strings); a field whose metadata says ``omit_none`` is left out when None.  Reading: each
field by its declared type; an absent field takes its declared default — the one place
where a row written before a field existed is completed — and an absent field without a
default, or a value of the wrong type, is an error naming the field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Self, TypeVar

R = TypeVar("R")
OMIT_NONE = {"omit_none": True}  # field metadata: left out of the JSON when None


class CodecError(ValueError):
    """A value that does not fit its field; the message names the field."""


class JsonRecord:
    """A dataclass record whose JSON is derived from its fields."""

    def to_json(self) -> dict[str, Any]:
        return record_to_json(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Self:
        return record_from_json(cls, raw)


def to_json(value: object) -> Any:
    """``value`` as JSON: records by their fields (or their own ``to_json``)."""
    if isinstance(value, Path):
        return str(value)
    own = getattr(value, "to_json", None)
    if callable(own) and not dataclasses.is_dataclass(value):
        return own()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return record_to_json(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    return value


def record_to_json(record: object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        if value is None and f.metadata.get("omit_none"):
            continue
        out[f.name] = to_json(value)
    return out


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def record_from_json(cls: type[R], raw: Mapping[str, Any]) -> R:
    """The record of type ``cls`` that ``raw`` holds (CodecError naming what does not fit;
    keys that are not fields are ignored: the schema decides what may be there)."""
    if not isinstance(raw, Mapping):
        raise CodecError(f"{cls.__name__}: expected an object, not {raw!r}")
    hints = _hints(cls)  # type: ignore[arg-type]  # a class is hashable
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CodecError(f"{cls.__name__}.{f.name}: missing")
            continue
        try:
            values[f.name] = from_json(hints[f.name], raw[f.name])
        except CodecError as exc:
            raise CodecError(f"{cls.__name__}.{f.name}: {exc}") from None
        except (TypeError, ValueError, KeyError) as exc:
            raise CodecError(f"{cls.__name__}.{f.name}: {exc}") from None
    return cls(**values)


def from_json(hint: Any, value: Any) -> Any:
    """``value`` read as the declared type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return from_json(inner, value)
    if hint is Any:
        return value
    if hint is Path:
        return Path(_typed(str, value))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        own = hint.__dict__.get("from_json")
        return own.__get__(None, hint)(value) if own else record_from_json(hint, value)
    if isinstance(hint, type) and callable(getattr(hint, "from_json", None)):
        return hint.from_json(value)  # type: ignore[attr-defined]
    if origin is tuple:
        items = _typed(list, value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], v) for v in items)
        if len(args) != len(items):
            raise CodecError(f"expected {len(args)} items, not {len(items)}")
        return tuple(from_json(a, v) for a, v in zip(args, items, strict=True))
    if origin in (dict, Mapping):
        key_type, value_type = args
        return {
            from_json(key_type, k): from_json(value_type, v) for k, v in _typed(dict, value).items()
        }
    if origin is typing.Literal:
        if value not in args:
            raise CodecError(f"{value!r} is not one of {', '.join(map(str, args))}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CodecError(f"expected a number, not {value!r}")
        return float(value)
    if isinstance(hint, type):
        return _typed(hint, value)
    raise CodecError(f"no reading for the type {hint!r}")


T = TypeVar("T")


def _typed(kind: type[T], value: object) -> T:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise CodecError(f"expected {kind.__name__}, not {value!r}")
    return value
