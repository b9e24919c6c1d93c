"""Does a value read from JSON or TOML fit a type annotation? The one validator of stored fields
(run configurations, events, study files)."""

from __future__ import annotations

import types
import typing
from typing import Any


def has_type(value: Any, hint: Any) -> bool:
    """Whether `value` fits the annotation `hint`; bool is not an int, an int is a float."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(has_type(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(has_type(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(has_type(k, args[0]) and has_type(v, args[1]) for k, v in value.items())
    if hint is dict or hint is list:
        return isinstance(value, hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint) and (hint is bool or not isinstance(value, bool))


def type_name(hint: Any) -> str:
    """`int | None` rather than `typing.Optional[int]`."""
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
