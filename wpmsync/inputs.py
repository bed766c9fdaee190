"""Everything that comes from outside, parsed strictly, in one place.

HTTP bodies, query strings, route parameters and headers, hook data, queue messages and the
options read back from ``sitemeta`` all go through these functions before anything is looked up
or written. The rules, each written once:

- an id is a JSON integer in 1..2^63-1 (``True`` is not 1, ``"3"`` is not 3, ``1.0`` is not 1);
  only text that is text by nature (a route parameter, a query string, a JSON object's key such
  as ``options.sites``'s, a command-line argument) may give it as ASCII digits (``text=True``);
- an actor id is an id, or ``0`` for nobody (``actor_id``);
- a list is a JSON array (a string is not a list of its characters, an object not a list of its
  keys), of at most ``MAX_LIST`` items;
- a boolean is ``true`` or ``false``; an enum value is one of its values, exactly;
- a role name matches ``\\A[A-Za-z0-9_-]{1,64}\\Z`` (``\\Z``: no final newline slips through);
- an event id is canonical: 8 to 64 lowercase letters, digits and ``. _ : -``;
- a header is bounded and carries no control characters and no lone surrogates (which no
  database connection can encode); a hook's timestamp header is ``signing.verify``'s (ASCII
  digits), refused there as a 401.

Every refusal is an ``InputError`` naming the field (``error.field``), which the functions answer
with a 400 before anything is written.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from .errors import InputError

MAX_ID = 2**63 - 1
MAX_LIST = 10_000
_DIGITS = re.compile(r"[0-9]{1,19}")  # [0-9]: ASCII digits only, unlike str.isdigit()
_ROLE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EVENT_ID = re.compile(r"[a-z0-9._:-]{8,64}")
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _shown(value: Any) -> str:
    """The refused value, short and printable, for the error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def ident(value: Any, field: str, text: bool = False) -> int:
    """A user or blog id: a JSON integer in 1..2^63-1; with ``text``, ASCII digits too."""
    return whole_number(value, field, 1, MAX_ID, text, shown_range="1 to 2^63-1")


def ids(value: Any, field: str, text: bool = False, allow_empty: bool = False,
        max_len: int = MAX_LIST) -> list[int]:
    """A list of ids, each once, in the order given; an empty list only with ``allow_empty``."""
    items = array(value, field, max_len)
    if not items and not allow_empty:
        raise InputError(f"{field} is empty: give at least one id", field)
    out = [ident(item, f"{field}[{i}]", text) for i, item in enumerate(items)]
    return list(dict.fromkeys(out))


def array(value: Any, field: str, max_len: int = MAX_LIST) -> list[Any]:
    """A JSON array (a list or tuple here), at most ``max_len`` items."""
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{field} must be a list, got {_shown(value)}", field)
    if len(value) > max_len:
        raise InputError(f"{field} holds {len(value)} items; at most {max_len}", field)
    return list(value)


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{field} must be true or false, got {_shown(value)}", field)
    return value


def choice(value: Any, field: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{field} must be one of {', '.join(choices)}, got {_shown(value)}", field)
    return value


def role(value: Any, field: str = "role") -> str:
    """Role names are array keys in PHP and parameters in SQL: letters, digits, _ and -."""
    if not isinstance(value, str) or not _ROLE.fullmatch(value):
        raise InputError(f"{field} must be a role name (1 to 64 letters, digits, _ and -), "
                         f"got {_shown(value)}", field)
    return value


def actor_id(value: Any, field: str = "actor_id") -> int | None:
    """Who acted: a user id, or ``0`` (None) when nobody was logged in (WP-Cron, WP-CLI: the
    mu-plugin sends ``get_current_user_id()``). ``null`` is no id, and refused."""
    if type(value) is int and value == 0:
        return None
    return ident(value, field)


def event_id(value: Any, field: str = "event_id") -> str:
    if not isinstance(value, str) or not _EVENT_ID.fullmatch(value):
        raise InputError(f"{field} must be 8 to 64 lowercase letters, digits and . _ : -", field)
    return value


def job_id(value: Any, field: str = "job_id") -> str:
    """The 32 hex digits an answer or the journal gave (upper case is the same id)."""
    if not isinstance(value, str) or not _JOB_ID.fullmatch(value.lower()):
        raise InputError(f"{field} must be the 32-character id an answer or the journal gave", field)
    return value.lower()


def whole_number(value: Any, field: str, low: int, high: int, text: bool = False,
                 shown_range: str | None = None) -> int:
    """A bounded whole number (an id, ``?limit=``, a queue message's ``from_user``): a JSON
    integer (``True`` is not 1); with ``text``, ASCII digits too."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif text and isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        number = None
    if number is None or not low <= number <= high:
        raise InputError(f"{field} must be a whole number from {shown_range or f'{low} to {high}'}, "
                         f"got {_shown(value)}", field)
    return number


def obj(value: Any, field: str, allowed: Iterable[str] | None = None) -> dict[str, Any]:
    """A JSON object; with ``allowed``, a key outside it is refused (a typo such as
    ``blog_id`` for ``blog_ids`` must not turn a sync of one site into a sync of all)."""
    if not isinstance(value, dict):
        raise InputError(f"{field} must be an object, got {_shown(value)}", field)
    if allowed is not None:
        unknown = sorted(str(k) for k in value if k not in set(allowed))
        if unknown:
            raise InputError(f"{field} has unknown field(s) {', '.join(map(_shown, unknown))}; "
                             f"known: {', '.join(sorted(allowed))}", f"{field}.{unknown[0]}")
    return value


def optional(data: dict[str, Any], key: str, parse: Any, default: Any, field: str | None = None,
             *args: Any) -> Any:
    """``parse(data[key], field, *args)`` when the key is there, else ``default`` (``null`` is
    not absent: it is refused like any other wrong type)."""
    if key not in data:
        return default
    return parse(data[key], field or key, *args)


def header_token(value: str | None, max_len: int = 64) -> str | None:
    """A caller's token header (``X-Correlation-Id``): kept when it is 1 to ``max_len`` of
    letters, digits and ``. _ : -``; anything else is dropped (the caller gets a fresh id),
    never stored or echoed."""
    if value is None:
        return None
    value = value.strip()
    return value if len(value) <= max_len and _TOKEN.fullmatch(value) else None


def header_label(value: str | None, max_len: int = 80) -> str:
    """A free-text header (``X-Wpmsync-Actor``): printable characters only, at most ``max_len``."""
    text = "".join(c for c in (value or "") if c.isprintable() and not "\ud800" <= c <= "\udfff")
    return text[:max_len].strip()
