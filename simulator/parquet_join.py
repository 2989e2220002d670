"""Parquet row groups encoded where they are computed, joined into one file as they are.

A run's ``timeseries.parquet`` and ``loans.parquet`` get one row group per
chunk of replications. Encoding a row group (the Parquet writer's work) is
the larger part of writing a file; if the process that writes the run
folder encoded every chunk, it would be the bottleneck of a parallel run.
So the process that simulates a chunk also encodes it (:func:`encode_part`:
a one-row-group Parquet file in memory, its footer already read), and the
run folder's file is the parts' row groups one after the other, copied
byte for byte, with one footer that lists them all (:class:`JoinedParquet`),
as parquet-mr's ``ParquetFileWriter.appendRowGroups`` joins files without
decoding them.

The layout of a Parquet file (https://parquet.apache.org/docs/file-format/):
``PAR1``, the column chunks, the footer (a Thrift ``FileMetaData`` in the
compact protocol), the footer's length (4 bytes, little endian), ``PAR1``.
The footer gives the position of every page in the file, so each part's
positions move by where its bytes land. The footer is not decoded into
objects: it is copied field by field, and only the fields that hold a
position, the row count and the list of row groups are rewritten
(:mod:`.thrift_compact`), so every other field, known or not, is kept.
Files with a page index (whose entries hold positions inside the copied
bytes), columns in other files or encryption are refused; :func:`encode`
writes none of them.

Every chunk goes through the same encoding whoever runs it, so a run writes
the same bytes serially, on local processes or on a Dask cluster.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import thrift_compact as tc

MAGIC = b"PAR1"
# The columns that say which rows a row group holds.
_INDEXED = ("replication", "date", "line", "project_id")
# Where a schema's field says how Parquet should store it (``results.stored_as_changes``).
ENCODING_KEY = b"parquet.encoding"
_LENGTH = struct.Struct("<i")
# A part goes to its file a megabyte at a time. Written at once, a revolving chunk's
# 12 MB took 30-50 ms as often as not on this project's machine (~4 ms otherwise),
# inside the kernel (not with transparent huge pages disabled for the process, nor
# without numpy's huge-page advice); a megabyte at a time, ~4 ms every time.
_WRITE_BYTES = 2**20

# Field ids of parquet.thrift (https://github.com/apache/parquet-format).
_FILE_SCHEMA, _FILE_ROWS, _FILE_ROW_GROUPS = 2, 3, 4
_FILE_ENCRYPTION = 8
_GROUP_COLUMNS, _GROUP_FILE_OFFSET, _GROUP_ORDINAL = 1, 5, 7
_CHUNK_FILE_PATH, _CHUNK_FILE_OFFSET, _CHUNK_META = 1, 2, 3
_META_POSITIONS = (9, 10, 11, 14)   # data, index, dictionary page; bloom filter
# What a joined file could not keep right: a page index (its entries give
# positions, inside bytes that are copied as they are), columns in other
# files, encryption.
_CHUNK_REFUSED = {1: "columns kept in other files", 4: "a page index", 5: "a page index",
                  6: "a page index", 7: "a page index", 8: "encrypted columns",
                  9: "encrypted columns"}


def encode(table: pa.Table, schema: pa.Schema) -> bytes:
    """:func:`encoded` as bytes."""
    return encoded(table, schema).to_pybytes()


def encoded(table: pa.Table, schema: pa.Schema) -> pa.Buffer:
    """``table`` as a Parquet file of one row group, with the run folder's options.

    The file's schema is ``schema`` (a table built from pandas carries extra
    metadata, which the run folder's files do not record). A text column of
    ``schema`` may come dictionary-coded (``results.travelling_timeseries_schema``):
    the writer then takes its codes as they are instead of hashing every
    value, and the file is the same. Files record Parquet's own types only,
    not Arrow's schema (which would tell readers to read such a column as
    codes): every column type here reads back from Parquet's as written.
    """
    sink = pa.BufferOutputStream()
    # Dictionary encoding only for the text columns: on the money columns it
    # triples the writing time for a few per cent of file size.
    text = [field.name for field in schema if field.type == pa.string()]
    # Statistics (each row group's minimum and maximum) only where readers filter
    # row groups: on the money columns they cost a sixth of the writing time.
    indexed = [name for name in _INDEXED if name in schema.names]
    coded = {field.name: field for field in table.schema if pa.types.is_dictionary(field.type)}
    schema = pa.schema([field.with_type(coded[field.name].type) if field.name in coded
                        else field for field in schema])
    # The encodings the schema's fields ask for (the others: Parquet's plain encoding).
    encodings = {field.name: field.metadata[ENCODING_KEY].decode() for field in schema
                 if field.metadata and ENCODING_KEY in field.metadata}
    with pq.ParquetWriter(sink, schema, use_dictionary=text, write_statistics=indexed,
                          column_encoding=encodings or None, store_schema=False) as writer:
        writer.write_table(table, row_group_size=max(len(table), 1))
    return sink.getvalue()


@dataclass
class Part:
    """A Parquet file read so that appending its row groups to another costs a copy.

    ``row_groups`` are the footer's row groups as pieces: bytes as they are,
    ints for positions in this file (moved by where the bytes land), and
    :class:`_Ordinal` where a row group's number goes; ``footer``, the
    footer as pieces, with :class:`_Rows` and :class:`_RowGroups` where the
    joined file's row count and row groups go. Reading a footer is the slow
    part of joining: :func:`encode_part` does it in the process that encodes
    the part, the process that joins only fills the pieces in.
    """

    data: bytes | pa.Buffer    # the file's bytes (Arrow's buffer as encoded: no copy)
    body_end: int              # where the footer starts
    rows: int
    schema: bytes              # the schema field, as encoded
    footer: list
    row_groups: list[list]


# Where values go in pieces (known by their type: a pickled copy is another object).
class _Ordinal:
    """A row group's number."""


class _Rows:
    """The file's row count."""


class _RowGroups:
    """The file's list of row groups."""


def encode_part(table: pa.Table, schema: pa.Schema) -> Part:
    """:func:`encode`, read as a :class:`Part` (its data is Arrow's buffer as encoded, not
    a copy: a revolving chunk's timeseries is 12 MB)."""
    return read_part(encoded(table, schema))


def read_part(file: bytes | pa.Buffer) -> Part:
    """Read a Parquet file's footer into pieces, in one pass over its bytes."""
    view = memoryview(file)
    size = len(view)
    if size < 12 or bytes(view[:4]) != MAGIC or bytes(view[-4:]) != MAGIC:
        raise ValueError("not a Parquet file")
    (length,) = _LENGTH.unpack(view[-8:-4])
    start = size - 8 - length
    if not len(MAGIC) <= start < size - 8:
        raise ValueError("not a Parquet file: its footer length is wrong")
    part = Part(file, start, 0, b"", [], [])
    data = bytes(view[start:size - 8])   # the footer: positions below are within it
    marks: list[tuple[int, int, object]] = []   # (start, end, what goes there), in order

    def field(number: int, kind: int, at: int) -> int | None:
        if number == _FILE_ENCRYPTION:
            raise ValueError("cannot join an encrypted Parquet file")
        if number == _FILE_SCHEMA:
            end = tc.skip(data, at, kind)
            part.schema = data[at:end]
            return end
        if number == _FILE_ROWS:
            part.rows, end = tc.int_at(data, at)
            marks.append((at, end, _Rows()))
            return end
        if number == _FILE_ROW_GROUPS:
            size, position = _list_of_structs(data, at)
            for _ in range(size):
                group: list[tuple[int, int, object]] = []
                end = _row_group(data, position, group)
                part.row_groups.append(_pieces(data, position, end, group))
                position = end
            marks.append((at, position, _RowGroups()))
            return position
        return None

    if tc.walk(data, 0, field) != len(data):
        raise ValueError("Thrift data: the value does not end where its bytes do")
    part.footer = _pieces(data, 0, len(data), marks)
    return part


class JoinedParquet:
    """A Parquet file written as the row groups of parts appended one by one.

    ``append`` takes parts of the same schema (:func:`encode_part`, or the
    bytes of :func:`encode`); ``close`` writes the footer. The file is not
    valid until closed.
    """

    def __init__(self, path: str | Path):
        self._file = open(path, "wb")   # noqa: SIM115 (closed by close() or abandon())
        self._file.write(MAGIC)
        self._position = len(MAGIC)
        self._first: Part | None = None
        self._row_groups: list[bytes] = []
        self._rows = 0

    def append(self, part: Part | bytes) -> None:
        """Copy the row groups of ``part`` to the end of this file."""
        if not isinstance(part, Part):
            part = read_part(part)
        if self._first is None:
            self._first = part
        elif part.schema != self._first.schema:
            raise ValueError("a part's schema differs from the first part's")
        shift = self._position - len(MAGIC)
        for pieces in part.row_groups:
            self._row_groups.append(_filled(pieces, shift, len(self._row_groups)))
        self._rows += part.rows
        body = memoryview(part.data)[len(MAGIC):part.body_end]
        for at in range(0, len(body), _WRITE_BYTES):
            self._file.write(body[at:at + _WRITE_BYTES])
        self._position += part.body_end - len(MAGIC)

    def close(self) -> None:
        """Write the footer that lists every row group appended, and close the file."""
        if self._file.closed:
            return
        try:
            if self._first is None:
                raise ValueError("no part was appended")
            filling = {_Rows: tc.write_int(self._rows),
                       _RowGroups: tc.write_list(tc.STRUCT, self._row_groups)}
            footer = b"".join(piece if isinstance(piece, bytes) else filling[type(piece)]
                              for piece in self._first.footer)
            self._file.write(footer + _LENGTH.pack(len(footer)) + MAGIC)
        finally:
            self._file.close()

    def abandon(self) -> None:
        """Close the file without a footer (the caller removes it)."""
        self._file.close()

    @property
    def is_open(self) -> bool:
        return not self._file.closed


def _filled(pieces: list, shift: int, ordinal: int) -> bytes:
    return b"".join(piece if isinstance(piece, bytes) else
                    tc.write_int(ordinal if isinstance(piece, _Ordinal) else piece + shift)
                    for piece in pieces)


def _pieces(data: bytes, start: int, end: int, marks: list[tuple[int, int, object]]) -> list:
    """``data[start:end]`` as pieces: the bytes between the marked values, and the marks."""
    pieces: list = []
    for mark_start, mark_end, what in marks:
        pieces += [data[start:mark_start], what]
        start = mark_end
    pieces.append(data[start:end])
    return pieces


def _list_of_structs(data: bytes, at: int) -> tuple[int, int]:
    """The size of the list of structs at ``at``, and where its first element starts."""
    size, kind, position = tc.list_at(data, at)
    if kind != tc.STRUCT:
        raise ValueError("Parquet footer: a list of row groups or columns holds no structs")
    return size, position


def _position(data: bytes, number: int, kind: int, at: int,
              marks: list[tuple[int, int, object]]) -> int:
    """Mark a position to move; 0 (no page: an empty column, a deprecated field) stays."""
    if kind not in (tc.I32, tc.I64):
        raise ValueError(f"Parquet footer: field {number} is not a position")
    position, end = tc.int_at(data, at)
    if position:
        marks.append((at, end, position))
    return end


def _row_group(data: bytes, start: int, marks: list[tuple[int, int, object]]) -> int:
    """Mark the positions and the number of the RowGroup at ``start``; where it ends."""

    def field(number: int, kind: int, at: int) -> int | None:
        if number == _GROUP_COLUMNS:
            size, position = _list_of_structs(data, at)
            for _ in range(size):
                position = _column_chunk(data, position, marks)
            return position
        if number == _GROUP_FILE_OFFSET:
            return _position(data, number, kind, at, marks)
        if number == _GROUP_ORDINAL:
            end = tc.skip(data, at, kind)
            marks.append((at, end, _Ordinal()))
            return end
        return None

    return tc.walk(data, start, field)


def _column_chunk(data: bytes, start: int, marks: list[tuple[int, int, object]]) -> int:
    """Mark the positions of the ColumnChunk at ``start`` (and of its ColumnMetaData)."""

    def field(number: int, kind: int, at: int) -> int | None:
        if number in _CHUNK_REFUSED:
            raise ValueError(f"cannot join a Parquet file with {_CHUNK_REFUSED[number]}")
        if number == _CHUNK_FILE_OFFSET:   # deprecated: 0 now, a position in old files
            return _position(data, number, kind, at, marks)
        if number == _CHUNK_META:
            return tc.walk(data, at, metadata)
        return None

    def metadata(number: int, kind: int, at: int) -> int | None:
        return _position(data, number, kind, at, marks) if number in _META_POSITIONS else None

    return tc.walk(data, start, field)
