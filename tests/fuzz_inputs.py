"""Hypothesis strategies for tests/test_fuzz.py: the values a careless script or an attacker sends.

Every strategy named ``not_*`` draws only values that the input rules of ``wpmsync/inputs.py``
refuse for that kind of field, so a request carrying exactly one of them in a JSON body must be
answered 400. The ``*_text`` pools are for fields that are text by nature (route parameters, query
strings, JSON object keys, headers), where ASCII digits are the one accepted spelling of a number.
"""
from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import strategies as st

MAX_ID = 2**63 - 1
ROLE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOKEN_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
ROLES = ("subscriber", "contributor", "author", "editor", "administrator")  # on every site

# Digits that str.isdigit() / int() accept but that are not ASCII: superscript two, Arabic-Indic
# one-two, full-width three, Arabic-Indic three-four, superscript four, mathematical bold three.
NON_ASCII_DIGITS = ("²", "١٢", "３", "٣٤", "⁴", "𝟑", "²²²²²²²²²²")
# Text that is not a whole number from 1 to 2^63-1 in ASCII digits (route parameter, query string,
# JSON object key).
NOT_ID_TEXT = ("", " ", "abc", "0", "00", "-1", "+2", " 2", "2 ", "2\n", "2.0", "1e3", "0x2", "2,3",
               "9" * 20, str(2**63), "٢", "1/2", "../2", "2;1") + NON_ASCII_DIGITS

BIG_INTS = (0, -1, -(2**63), 2**63, 2**64, 10**30, -(10**30))
ODD_SCALARS: tuple[Any, ...] = (None, True, False, 0.0, 1.0, 1.5, -2.5, 1e300, float("nan"), float("inf"),
                                "", "null", "true", [], {}, [[]], {"": None})


def _not_whole_number_text(text: str) -> bool:
    return not re.fullmatch(r"[0-9]{1,19}", text) or not 1 <= int(text) <= MAX_ID


not_id: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(("3", "34", "1", " 3", "3 ", "3\n", "+3", "3.0", "0x3", "1e3") + NON_ASCII_DIGITS),
    st.sampled_from(BIG_INTS + ODD_SCALARS),
    st.integers(max_value=0),
    st.integers(min_value=2**63),
    st.floats(),                                     # 3.0 is not 3
    st.text(max_size=12),                            # any text: a JSON id is a number
    st.lists(st.integers(1, 9), min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(("1", "3", "4")), st.booleans(), min_size=1, max_size=2),
)
"""A value that is never a user or blog id in a JSON body."""


def not_id_list(valid_item: st.SearchStrategy[int], allow_empty: bool = False) -> st.SearchStrategy[Any]:
    """A value that is never a list of ids: a string (split character by character by the old
    code), an object (its keys taken as ids), a scalar, or an array holding one bad item."""
    bad_list = st.tuples(st.lists(valid_item, max_size=3), not_id, st.lists(valid_item, max_size=2)).map(
        lambda t: [*t[0], t[1], *t[2]])
    options = [
        st.sampled_from(("34", "3,4", "3 4", "[3]", "", "1")),
        st.sampled_from(NON_ASCII_DIGITS),
        st.sampled_from((None, True, False, 3, 34, 1.5, 3.0, 0, -1, 2**63)),
        st.dictionaries(st.sampled_from(("1", "3", "4")), st.sampled_from((True, 1, "x")), min_size=1, max_size=3),
        bad_list,
        st.just([1] * 10_001),                        # longer than any list bound
    ]
    if not allow_empty:
        options.append(st.just([]))
    return st.one_of(*options)


not_bool: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(("true", "false", "True", "yes", "no", "on", "off", "1", "0", "", " ")),
    st.sampled_from((0, 1, 2, -1, 0.0, 1.0, None, [], {}, [True], {"true": True})),
    st.integers(), st.text(max_size=8),
)
"""A value that is not ``true`` / ``false``."""

# The trigger switches over HTTP are JSON true / false like every other boolean (the WordPress
# screen sends those): "on", "yes" and the like are refused too. (The CLI's --new-user on|off is
# text by nature and parsed there.)
not_switch: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(("on", "off", "yes", "no", "true", "false", "1", "0", "", "ON", " on", "\ud800", "on\x00")),
    not_bool,
)
"""A value that is not a trigger switch value."""

role_name: st.SearchStrategy[str] = st.sampled_from(ROLES)
not_role: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(("editor\n", "", "a" * 65, "édit", "ed itor", "editor;", "editor\t", " editor",
                     "ed\x00", "\ud800", "role'--", "ed.itor", "ed/itor", "ＥＤＩＴＯＲ")),
    st.sampled_from((5, 0, None, True, 1.5, ["editor"], {"editor": True})),
    st.text(max_size=70).filter(lambda s: not ROLE_RE.fullmatch(s)),
)
"""A value that is not a role name (``\\A[A-Za-z0-9_-]{1,64}\\Z``)."""


def not_role_list() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(("editor", "", "editor,author")),
        st.sampled_from((None, 0, 1, True, {"0": "editor"}, {"editor": True})),
        st.tuples(st.lists(role_name, max_size=2), not_role).map(lambda t: [*t[0], t[1]]),
        st.just(["editor"] * 1001),
    )


def not_choice(choices: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Anything but one of ``choices`` exactly (upper case, padded, a list of it, null, false)."""
    near = [c.upper() for c in choices] + [c + " " for c in choices] + [" " + c for c in choices] + \
        [c + "\n" for c in choices] + [c.capitalize() for c in choices]
    return st.one_of(
        st.sampled_from(tuple(v for v in near if v not in choices)),
        st.sampled_from((None, False, True, 0, 1, "", [choices[0]], {choices[0]: True})),
        st.text(max_size=20).filter(lambda s: s not in choices),
    )


def not_id_text() -> st.SearchStrategy[str]:
    """Route-parameter / object-key text that is not an id."""
    return st.one_of(st.sampled_from(NOT_ID_TEXT), st.text(max_size=12).filter(_not_whole_number_text))


def not_limit_text() -> st.SearchStrategy[str]:
    """``?limit=`` values outside 1..500 in ASCII digits."""
    return st.one_of(
        st.sampled_from(("0", "501", "-1", "1.5", "abc", " 5", "5 ", "1e2", "9" * 30, "0x10", "+5", "5\n")
                        + NON_ASCII_DIGITS),
        st.integers(min_value=501).map(str),
        st.text(max_size=6).filter(lambda s: s != "" and not (re.fullmatch(r"[0-9]{1,19}", s)
                                                              and 1 <= int(s) <= 500)),
    )


unknown_key: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(("blogids", "BLOG_IDS", "userids", "user", "extra", "dryrun", "Force", "", " ",
                     "blog_ids ", "__proto__", "constructor", "\ud800", "é", "0", "a" * 300)),
    st.text(min_size=1, max_size=10).map(lambda s: "x_" + s),
)
"""A key no endpoint knows (a typo must be refused, not ignored)."""

# Bodies that are not a JSON object, each with the status it must get: 400, or 413 over 64 KiB.
NESTED = 30_000  # arrays or objects this deep: under 64 KiB, deeper than Python's recursion limit
JUNK_BODIES: tuple[tuple[bytes, int], ...] = (
    (b"{not json", 400), (b"[1, 2]", 400), (b'"x"', 400), (b"1", 400), (b"null", 400), (b"true", 400),
    (b"\xff\xfe\x00garbage", 400), (b"{" * 5, 400), (b'{"a": 1', 400), (b"\x00", 400),
    (b"NaN", 400), (b'{"a": 1}{"b": 2}', 400), (b"[]", 400),
    (b'{"\\ud800": 1', 400), (b'{"a": "\xed\xa0\x80"}', 400),        # lone surrogate as raw UTF-8
    (b"[" * NESTED + b"]" * NESTED, 400),                           # RecursionError in json.loads
    (b'{"a":' * (NESTED // 3) + b"1" + b"}" * (NESTED // 3), 400),
    (b'{"a": ' + b"9" * 5000 + b"}", 400),                          # over int()'s digit limit
    (b'{"pad": "' + b"x" * 70_000 + b'"}', 413),
    (b" " * 70_000, 413),
)

# X-Correlation-Id and X-Wpmsync-Actor values (no lone surrogates: HTTP headers cannot carry them).
correlation_header: st.SearchStrategy[str | None] = st.one_of(
    st.none(), st.none(), st.none(),
    st.sampled_from(("corr-123", "a" * 64, "a" * 65, "x" * 300, "", "  ", "bad\nid", "ctl\x00\x1f\x7f",
                     "é" * 10, "id with spaces", "<script>alert(1)</script>", "a';DROP TABLE wp_users;--",
                     " padded-ok ", "UPPER.lower:1_2-3")),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=80),
)
actor_header: st.SearchStrategy[str | None] = st.one_of(
    st.none(), st.none(), st.none(),
    st.sampled_from(("admin", "x" * 500, "a\nb\rc\x00d", "é" * 100, "\u202eevil", "", "\t")),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=100),
)


def dumps(body: Any) -> bytes:
    """JSON as a client would send it (lone surrogates as \\ud800 escapes; NaN allowed)."""
    return json.dumps(body).encode("ascii")
