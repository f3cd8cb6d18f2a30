"""Checks of single spec values, shared by the spec and its joins: each error names the
spec, the key and where it is.
"""

import codecs
import math
from typing import Any, List, Mapping, Optional, Sequence, Set

from ...errors import Errors
from .exceptions import SpecError


def invalid_value(*, spec: str, key: str, where: str, expected: str, value: Any) -> SpecError:
    """The error for a spec value of the wrong type or form."""
    return SpecError(
        Errors.E203.format(spec=spec, key=key, where=where, expected=expected, value=value)
    )


def check_keys(source: str, data: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    unknown = [key for key in data if key not in known]
    if unknown:
        raise SpecError(
            Errors.E202.format(spec=source, keys=unknown, where=where, known=list(known))
        )


def str_setting(source: str, data: Mapping[str, Any], key: str, default: Any) -> Any:
    value = data.get(key, default)
    if value is default:
        return value
    if not isinstance(value, str) or not value:
        raise invalid_value(
            spec=source, key=key, where="", expected="a non-empty string", value=value
        )
    return value


def as_list(source: str, value: Any, key: str, scalar: bool = True) -> List[Any]:
    """A list setting; with `scalar`, one string or number stands for a list of it."""
    if value is None:
        return []
    if scalar and isinstance(value, (str, int, float)):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise invalid_value(spec=source, key=key, where="", expected="a list", value=value)


def str_list(source: str, value: Any, key: str, where: str) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise invalid_value(
            spec=source, key=key, where=where, expected="a list of non-empty strings", value=value
        )
    return list(value)


def key_str(source: str, value: Any, where: str) -> str:
    """A spec key or label as the string a cell would hold (YAML 1 → '1', true → 'true')."""
    try:
        return scalar_str(value)
    except TypeError:
        raise invalid_value(
            spec=source, key=where, where="", expected="a string or number", value=value
        ) from None


def scalar_str(value: Any) -> str:
    """A scalar as the string a cell would hold: True → 'true', 5.0 → '5'. TypeError else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    raise TypeError(type(value).__name__)


def check_unicode(source: str, value: Any, path: str, seen: Optional[Set[int]] = None) -> None:
    """Every string in the spec (keys too) is valid Unicode: a lone surrogate (JSON
    "\\udfff") in a label or a column name could never be matched or written.

    path (str): Where `value` is, e.g. 'groups.g.labels[0]' ('' for the top level).
    seen (Optional[Set[int]]): Containers already checked: a YAML alias can make a list
        or mapping that holds itself (`a: &x [*x]`).
    """
    if isinstance(value, str):
        check_str(source, value, f"`{path}`" if path else "the spec")
        return
    if not isinstance(value, (Mapping, list, tuple)):
        return
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                check_str(source, key, f"a key of `{path}`" if path else "a top-level key")
            check_unicode(source, item, f"{path}.{key}" if path else str(key), seen)
    else:
        for i, item in enumerate(value):
            check_unicode(source, item, f"{path}[{i}]", seen)


def check_str(source: str, value: str, where: str) -> None:
    position = surrogate_at(value)
    if position is not None:
        raise SpecError(
            Errors.E277.format(spec=source, where=where, value=value, char=value[position])
        )


def surrogate_at(text: str) -> Optional[int]:
    """The position of the first lone surrogate in `text` (not valid Unicode), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def check_encoding(source: str, encoding: str) -> None:
    # Lines are split on b"\n" before decoding, so that a bad byte names its line; that
    # only works for encodings where ASCII bytes stand for themselves (not UTF-16).
    try:
        codecs.lookup(encoding)
        ok = "a\n".encode(encoding) == b"a\n"
    except (LookupError, UnicodeError):
        ok = False
    if not ok:
        raise SpecError(Errors.E214.format(spec=source, encoding=encoding))
