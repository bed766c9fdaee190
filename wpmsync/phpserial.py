"""PHP ``serialize()`` for the small shapes WordPress keeps in options and usermeta.

WordPress stores capabilities arrays, the roles list and ``site_admins`` as PHP-serialized
arrays. We read and write exactly those shapes (arrays, strings, ints, floats, bools, null) and
refuse anything else (objects, references) as a broken value: never ``eval``, never a PHP
object. String lengths are counted in UTF-8 bytes, as PHP does.
"""
from __future__ import annotations

from typing import Any


class PHPSerialError(ValueError):
    """The text is not a PHP-serialized value of a shape we accept."""


def dumps(value: Any) -> str:
    """Serialize like PHP's ``serialize()``: dicts keep their order, lists get keys 0..n-1."""
    return "".join(_dump(value))


def _dump(value: Any):
    if value is None:
        yield "N;"
    elif value is True or value is False:
        yield f"b:{int(value)};"
    elif isinstance(value, int):
        yield f"i:{value};"
    elif isinstance(value, float):
        yield f"d:{_php_float(value)};"
    elif isinstance(value, str):
        yield f's:{len(value.encode("utf-8"))}:"{value}";'
    elif isinstance(value, (dict, list, tuple)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        items = list(items)
        yield f"a:{len(items)}:{{"
        for key, item in items:
            yield from _dump(_php_key(key))
            yield from _dump(item)
        yield "}"
    else:
        raise PHPSerialError(f"cannot serialize {type(value).__name__}")


def _php_key(key: Any) -> int | str:
    """PHP turns decimal-integer string keys into int keys; mirror that."""
    if isinstance(key, bool):
        return int(key)
    if isinstance(key, int):
        return key
    if isinstance(key, str):
        if key == "0" or (key[:1] in "123456789" and key.isdigit()) or (
            key[:1] == "-" and key[1:2] in "123456789" and key[1:].isdigit()
        ):
            return int(key)
        return key
    raise PHPSerialError(f"array key of type {type(key).__name__}")


def _php_float(value: float) -> str:
    if value != value:
        return "NAN"
    if value in (float("inf"), float("-inf")):
        return "INF" if value > 0 else "-INF"
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def loads(text: str | bytes) -> Any:
    """Parse a PHP-serialized value; arrays become dicts (insertion order kept)."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    value, end = _load(data, 0)
    if end != len(data):
        raise PHPSerialError(f"trailing data at byte {end}")
    return value


def _expect(data: bytes, pos: int, token: bytes) -> int:
    if data[pos:pos + len(token)] != token:
        raise PHPSerialError(f"expected {token.decode()!r} at byte {pos}")
    return pos + len(token)


def _read_until(data: bytes, pos: int, stop: bytes) -> tuple[bytes, int]:
    end = data.find(stop, pos)
    if end < 0:
        raise PHPSerialError(f"unterminated value at byte {pos}")
    return data[pos:end], end + 1


def _int(raw: bytes, pos: int) -> int:
    text = raw.decode("ascii", "replace")
    if not text or not (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
        raise PHPSerialError(f"bad integer {text!r} at byte {pos}")
    return int(text)


def _load(data: bytes, pos: int) -> tuple[Any, int]:
    kind = data[pos:pos + 1]
    if kind == b"N":
        return None, _expect(data, pos + 1, b";")
    pos = _expect(data, pos + 1, b":") if kind else pos
    if kind == b"b":
        raw, end = _read_until(data, pos, b";")
        if raw not in (b"0", b"1"):
            raise PHPSerialError(f"bad boolean at byte {pos}")
        return raw == b"1", end
    if kind == b"i":
        raw, end = _read_until(data, pos, b";")
        return _int(raw, pos), end
    if kind == b"d":
        raw, end = _read_until(data, pos, b";")
        try:
            return float(raw.decode("ascii")), end
        except ValueError as exc:
            raise PHPSerialError(f"bad float at byte {pos}") from exc
    if kind == b"s":
        raw, pos = _read_until(data, pos, b":")
        length = _int(raw, pos)
        pos = _expect(data, pos, b'"')
        value = data[pos:pos + length]
        if len(value) != length:
            raise PHPSerialError(f"string shorter than its length at byte {pos}")
        pos = _expect(data, pos + length, b'";')
        try:
            return value.decode("utf-8"), pos
        except UnicodeDecodeError as exc:
            raise PHPSerialError(f"string is not UTF-8 at byte {pos}") from exc
    if kind == b"a":
        raw, pos = _read_until(data, pos, b":")
        count = _int(raw, pos)
        pos = _expect(data, pos, b"{")
        result: dict[Any, Any] = {}
        for _ in range(count):
            key, pos = _load(data, pos)
            if not isinstance(key, (int, str)) or isinstance(key, bool):
                raise PHPSerialError(f"bad array key at byte {pos}")
            result[key], pos = _load(data, pos)
        return result, _expect(data, pos, b"}")
    raise PHPSerialError(f"unsupported PHP value type {kind.decode('ascii', 'replace')!r} at byte {pos}")


def is_serialized_text(text: str | None) -> bool:
    """True when ``text`` looks like something WordPress would ``maybe_unserialize``."""
    return bool(text) and text[:2] in ("a:", "s:", "i:", "d:", "b:", "N;", "O:", "C:")
