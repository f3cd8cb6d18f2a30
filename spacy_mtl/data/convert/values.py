"""Checks of single spec values, shared by the spec and its joins: each error names the
spec, the key and where it is.
"""

import codecs
import math
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Set

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
        try:
            return str(value)
        except ValueError:  # over Python's int-to-string limit (4,300 digits)
            raise TypeError("int of more than 4,300 digits") from None
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
    except LookupError:
        why = (
            "is not an encoding Python knows (a typo?); use a codec name such as 'utf-8', "
            "'cp1252' or 'latin-1'"
        )
        raise SpecError(Errors.E214.format(spec=source, encoding=encoding, why=why)) from None
    try:
        ok = "a\n".encode(encoding) == b"a\n"
    except (LookupError, UnicodeError):
        ok = False
    if not ok:
        why = (
            "is not ASCII-compatible, so its files cannot be read line by line; re-encode "
            "the file as UTF-8"
        )
        raise SpecError(Errors.E214.format(spec=source, encoding=encoding, why=why))


# What an error message echoes of a value: a 50 MB cell must not become a 50 MB message.
ECHO_LIMIT = 200


def clip(value: Any, limit: int = ECHO_LIMIT) -> Any:
    """A value as an error message may echo it: a string (or the repr of anything else)
    longer than `limit` characters is cut to its start, an ellipsis and its length.

    Short values come back as they are, so `{value!r}` in a message shows them as before.
    """
    if not isinstance(value, str):
        if value is None or isinstance(value, (bool, float)):
            return value
        if isinstance(value, int):
            # str() of an int over 4,300 digits raises; its length is what matters here.
            if value.bit_length() < 600:
                return value
            return _Clipped(f"<a {value.bit_length():,}-bit number>")
        value = _Clipped(repr(value))
    if len(value) <= limit:
        return value
    cut = f"{value[:limit]}… ({len(value):,} characters)"
    return _Clipped(cut) if isinstance(value, _Clipped) else cut


class _Clipped(str):
    """A repr already made (and maybe cut): `{value!r}` shows it without new quotes."""

    def __repr__(self) -> str:
        return str(self)


# Separators the csv reader cannot tell from its quoting or line structure.
_BAD_SEPARATORS = {'"': "the quote character", "\n": "a line break", "\r": "a line break"}


def check_sep(source: str, sep: Any, where: str) -> None:
    """`sep` is one character, and not one that the csv reader gives another meaning."""
    if not isinstance(sep, str) or len(sep) != 1:
        raise invalid_value(
            spec=source, key="sep", where=where, expected="one character", value=sep
        )
    if sep in _BAD_SEPARATORS:
        raise invalid_value(
            spec=source,
            key="sep",
            where=where,
            expected=f"one character other than {_BAD_SEPARATORS[sep]} (rows and quoted "
            "fields are found by it)",
            value=sep,
        )


def check_cell_value(source: str, group: str, value: str, delimiter: Optional[str]) -> None:
    """A label value that cells are compared with must be one a cell can hold: cells are
    stripped, and split on the group's delimiter, before they are compared."""
    why = fix = None
    if value != value.strip():
        why, fix = "has surrounding whitespace", f"write it as {value.strip()!r}"
    elif delimiter is not None and delimiter in value:
        why = f"holds the group's delimiter {delimiter!r}"
        fix = "rename the label, or use another delimiter"
    if why is not None:
        raise SpecError(Errors.E297.format(spec=source, group=group, value=value, why=why, fix=fix))


def check_pattern(source: str, pattern: str) -> None:
    """Refuse a `pattern` whose repeated group holds anything of variable length, such as
    `(\\w+\\s?)+`: Python's backtracking matcher can take exponential time on a line
    that does not match it. Inside a repeated group
    (`+`, `*`, `{m,n}` with n > 1) only fixed-length items are accepted: `(ab)+`,
    `(\\d{3},)+` and character classes are fine; `+`, `*`, `?`, `{m,n}` and `|` are not.
    Patterns that backtrack polynomially (`[^,]*[^;]*!`) pass: the reader stops those per
    line after `readers.PATTERN_CPU_SECONDS` of CPU time.
    """
    try:
        from re import _parser as sre_parse  # type: ignore[attr-defined]
    except ImportError:  # Python < 3.11
        import sre_parse  # type: ignore[no-redef]

    repeats = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT}
    repeats.update(op for op in [getattr(sre_parse, "POSSESSIVE_REPEAT", None)] if op is not None)

    def items(value: Any) -> Iterable[Any]:
        """The (op, argument) items of a parsed pattern or of any argument holding some."""
        if isinstance(value, sre_parse.SubPattern):
            yield from value.data
        elif isinstance(value, (list, tuple)):
            for part in value:
                if isinstance(part, (sre_parse.SubPattern, list, tuple)):
                    yield from items(part)

    def find(value: Any, inside: bool) -> Optional[str]:
        for item in items(value):
            if not (isinstance(item, tuple) and len(item) == 2):
                continue
            op, arg = item
            if inside and op == sre_parse.BRANCH:
                return "an alternative '|' inside a repeated group"
            if op in repeats:
                low, high, sub = arg
                if inside and low != high:
                    return "a variable repeat inside a repeated group"
                found = find(sub, inside or high > 1)
            else:
                found = find(arg, inside)
            if found:
                return found
        return None

    shape = find(sre_parse.parse(pattern), False)
    if shape is not None:
        raise SpecError(Errors.E269.format(spec=source, pattern=pattern, shape=shape))
