"""The Thrift compact protocol, as far as copying and editing a struct field by field.

Parquet footers are Thrift structs in the compact protocol
(https://github.com/apache/thrift/blob/master/doc/specs/thrift-compact-protocol.md).
``parquet_join`` needs to rewrite a few integer fields deep inside them and
keep every other byte. :func:`walk` goes through a struct once, handing
each field's position to a visitor that may walk into it, so the fields
to rewrite are found without reading any level into objects; the bytes
around them are kept as they are, fields the reader has never heard of
included. :func:`read_struct` and :func:`write_struct` read a struct as a
list of :class:`Field` (each holding the encoded bytes of its value) and
write it back with some values replaced: the way to look into a footer
or build one field by field (the tests do).

The rules used: a field header is one byte, ``delta << 4 | type``, when the
field id exceeds the previous one by 1 to 15, else the type byte and the
id as a zigzag varint; integers are zigzag varints; binaries are a varint
length and the bytes; lists and sets are a header (``size << 4 | type``,
or ``0xF0 | type`` and a varint size) and their elements; a struct ends
with a zero byte; a boolean field carries its value in its type (1 true,
2 false), a boolean element takes one byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT, UUID = range(14)
_FIXED = {BYTE: 1, DOUBLE: 8, UUID: 16}


@dataclass(frozen=True)
class Field:
    id: int
    kind: int        # the compact protocol's type
    value: bytes     # the value as encoded (empty for a boolean field)


def read_struct(data: bytes) -> list[Field]:
    """The fields of the struct encoded in ``data`` (which ends with its stop byte)."""
    fields = []
    with _reading():
        last, position = 0, 0
        while True:
            number, kind, position = _field_header(data, position, last)
            if kind == STOP:
                break
            start = position
            if kind not in (TRUE, FALSE):   # a boolean field's value is its type
                position = _skip(data, position, kind)
            fields.append(Field(number, kind, data[start:position]))
            last = number
    _done(data, position)
    return fields


def walk(data: bytes, position: int,
         visit: Callable[[int, int, int], int | None]) -> int:
    """Walk the struct that starts at ``data[position]``; the position after it.

    For every field but a boolean one, ``visit(id, kind, start)`` is called
    with the position of the field's value; it returns the position after
    the value if it walked the value itself, else None (the value is
    skipped). Malformed data raises ValueError.
    """
    with _reading():
        last = 0
        while True:
            number, kind, position = _field_header(data, position, last)
            if kind == STOP:
                return position
            if kind not in (TRUE, FALSE):   # a boolean field's value is its type
                end = visit(number, kind, position)
                position = _skip(data, position, kind) if end is None else end
            last = number


def int_at(data: bytes, position: int) -> tuple[int, int]:
    """The i16, i32 or i64 value at ``position``, and the position after it."""
    with _reading():
        value, position = _read_varint(data, position)
    return _unzigzag(value), position


def list_at(data: bytes, position: int) -> tuple[int, int, int]:
    """The list (or set) header at ``position``: size, element type, position after it."""
    with _reading():
        return _list_header(data, position)


def skip(data: bytes, position: int, kind: int) -> int:
    """The position after the value of type ``kind`` at ``position`` (a struct field's)."""
    with _reading():
        return _skip(data, position, kind)


def write_struct(fields: list[Field], values: dict[int, bytes] | None = None) -> bytes:
    """Encode ``fields`` in order, with the values in ``values`` (by field id) instead."""
    values = values or {}
    out = bytearray()
    last = 0
    for field in fields:
        out += field_header(last, field)
        out += values.get(field.id, field.value)
        last = field.id
    out.append(STOP)
    return bytes(out)


def field_header(previous_id: int, field: Field) -> bytes:
    """The header of ``field`` after a field numbered ``previous_id`` (0: the first)."""
    delta = field.id - previous_id
    if 0 < delta <= 15:
        return bytes([delta << 4 | field.kind])
    return bytes([field.kind]) + _varint(_zigzag(field.id))


def read_list(data: bytes) -> list[bytes]:
    """The encoded elements of the list (or set) encoded in ``data``."""
    with _reading():
        size, kind, position = _list_header(data, 0)
        elements = []
        for _ in range(size):
            start = position
            position = _skip_element(data, position, kind)
            elements.append(data[start:position])
    _done(data, position)
    return elements


def write_list(kind: int, elements: list[bytes]) -> bytes:
    return list_header(kind, len(elements)) + b"".join(elements)


def list_header(kind: int, size: int) -> bytes:
    return bytes([size << 4 | kind]) if size < 15 else bytes([0xF0 | kind]) + _varint(size)


def read_int(data: bytes) -> int:
    """An i16, i32 or i64 value."""
    with _reading():
        value, position = _read_varint(data, 0)
    _done(data, position)
    return _unzigzag(value)


def write_int(value: int) -> bytes:
    return _varint(_zigzag(value))


def _zigzag(value: int) -> int:
    return value << 1 if value >= 0 else (-value << 1) - 1


def _unzigzag(value: int) -> int:
    return value >> 1 if not value & 1 else -((value + 1) >> 1)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _Reading:
    """Turn the two ways the readers below fail on malformed data into a ValueError.

    A class rather than ``contextlib.contextmanager``: entered a few hundred
    times per footer, a generator-based one was a fifth of reading one.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, traceback) -> bool:
        if kind is not None and issubclass(kind, IndexError):
            raise ValueError("Thrift data cut short") from None
        if kind is not None and issubclass(kind, RecursionError):
            raise ValueError("Thrift data nested too deep") from None
        return False


_READING = _Reading()


def _reading() -> _Reading:
    return _READING


def _done(data: bytes, position: int) -> None:
    if position != len(data):
        raise ValueError("Thrift data: the value does not end where its bytes do")


# Readers take the data and a position and return the position after what they read
# (and the value, if any); reading past the end raises IndexError.

def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ValueError("Thrift data: an integer longer than 64 bits")


def _field_header(data: bytes, position: int, last: int) -> tuple[int, int, int]:
    """The field header at ``position`` after field ``last``: its id, its type
    (STOP at the end of the struct) and the position of its value."""
    head = data[position]
    position += 1
    if head == STOP:
        return 0, STOP, position
    kind, delta = head & 0x0F, head >> 4
    if delta:
        return last + delta, kind, position
    value, position = _read_varint(data, position)
    return _unzigzag(value), kind, position


def _skip_varint(data: bytes, position: int) -> int:
    return _read_varint(data, position)[1]


def _list_header(data: bytes, position: int) -> tuple[int, int, int]:
    head = data[position]
    size = head >> 4
    if size == 15:
        size, position = _read_varint(data, position + 1)
        return size, head & 0x0F, position
    return size, head & 0x0F, position + 1


def _skip(data: bytes, position: int, kind: int) -> int:
    """Skip a value of a struct field (booleans have none)."""
    if kind in (I16, I32, I64):
        return _skip_varint(data, position)
    if kind == BINARY:
        length, position = _read_varint(data, position)
        end = position + length
        if end > len(data):
            raise IndexError
        return end
    if kind == STRUCT:
        while True:
            head = data[position]
            position += 1
            if head == STOP:
                return position
            if not head >> 4:
                position = _skip_varint(data, position)
            kind = head & 0x0F
            if kind not in (TRUE, FALSE):
                position = _skip(data, position, kind)
    if kind in (LIST, SET):
        size, element, position = _list_header(data, position)
        for _ in range(size):
            position = _skip_element(data, position, element)
        return position
    if kind == MAP:
        size, position = _read_varint(data, position)
        if size:
            types = data[position]
            position += 1
            for _ in range(size):
                position = _skip_element(data, position, types >> 4)
                position = _skip_element(data, position, types & 0x0F)
        return position
    if kind in _FIXED:
        end = position + _FIXED[kind]
        if end > len(data):
            raise IndexError
        return end
    raise ValueError(f"Thrift data: unknown type {kind}")


def _skip_element(data: bytes, position: int, kind: int) -> int:
    """Skip an element of a list, set or map (a boolean takes one byte there)."""
    if kind in (TRUE, FALSE):
        if position >= len(data):
            raise IndexError
        return position + 1
    return _skip(data, position, kind)
