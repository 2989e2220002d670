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
_LENGTH = struct.Struct("<i")

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
    """``table`` as a Parquet file of one row group, with the run folder's options.

    The file's schema is ``schema`` (a table built from pandas carries extra
    metadata, which the run folder's files do not record).
    """
    sink = pa.BufferOutputStream()
    # Dictionary encoding only for the text columns: on the money columns it
    # triples the writing time for a few per cent of file size.
    text = [field.name for field in schema if field.type == pa.string()]
    # Statistics (each row group's minimum and maximum) only where readers filter
    # row groups: on the money columns they cost a sixth of the writing time.
    indexed = [name for name in _INDEXED if name in schema.names]
    with pq.ParquetWriter(sink, schema, use_dictionary=text,
                          write_statistics=indexed) as writer:
        writer.write_table(table, row_group_size=max(len(table), 1))
    return sink.getvalue().to_pybytes()


@dataclass
class Part:
    """A Parquet file read so that appending its row groups to another costs a copy.

    ``row_groups`` are the footer's row groups as pieces: bytes as they are,
    ints for positions in this file (moved by where the bytes land), and
    :class:`_Ordinal` where a row group's number goes. Reading a footer is
    the slow part of joining: :func:`encode_part` does it in the process that
    encodes the part, the process that joins only fills the pieces in.
    """

    data: bytes
    body_end: int              # where the footer starts
    rows: int
    schema: bytes              # the schema field, as encoded
    footer: list[tc.Field]
    row_groups: list[list]


class _Ordinal:
    """Where a row group's number goes (known by its type: a pickled copy is another object)."""


def encode_part(table: pa.Table, schema: pa.Schema) -> Part:
    """:func:`encode`, read as a :class:`Part`."""
    return read_part(encode(table, schema))


def read_part(data: bytes) -> Part:
    if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:
        raise ValueError("not a Parquet file")
    (length,) = _LENGTH.unpack(data[-8:-4])
    start = len(data) - 8 - length
    if not len(MAGIC) <= start < len(data) - 8:
        raise ValueError("not a Parquet file: its footer length is wrong")
    footer = tc.read_struct(data[start:-8])
    part = Part(data, start, 0, b"", footer, [])
    for field in footer:
        if field.id == _FILE_ENCRYPTION:
            raise ValueError("cannot join an encrypted Parquet file")
        if field.id == _FILE_SCHEMA:
            part.schema = field.value
        elif field.id == _FILE_ROWS:
            part.rows = tc.read_int(field.value)
        elif field.id == _FILE_ROW_GROUPS:
            part.row_groups = [_group_pieces(group) for group in tc.read_list(field.value)]
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
        self._file.write(memoryview(part.data)[len(MAGIC):part.body_end])
        self._position += part.body_end - len(MAGIC)

    def close(self) -> None:
        """Write the footer that lists every row group appended, and close the file."""
        if self._file.closed:
            return
        try:
            if self._first is None:
                raise ValueError("no part was appended")
            footer = tc.write_struct(self._first.footer, {
                _FILE_ROWS: tc.write_int(self._rows),
                _FILE_ROW_GROUPS: tc.write_list(tc.STRUCT, self._row_groups)})
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


def _pieces(fields: list[tc.Field], edits: dict[int, list]) -> list:
    """A struct's encoding as pieces, with the values of ``edits`` (by field id) instead."""
    pieces: list = [b""]

    def add(piece) -> None:
        if isinstance(piece, bytes) and isinstance(pieces[-1], bytes):
            pieces[-1] += piece   # runs of bytes stay one piece
        else:
            pieces.append(piece)

    last = 0
    for field in fields:
        add(tc.field_header(last, field))
        for piece in edits.get(field.id, [field.value]):
            add(piece)
        last = field.id
    add(bytes([tc.STOP]))
    return pieces


def _position(field: tc.Field) -> list:
    """A position as a piece to move; 0 (no page: an empty column, a deprecated field) stays."""
    if field.kind not in (tc.I32, tc.I64):
        raise ValueError(f"Parquet footer: field {field.id} is not a position")
    position = tc.read_int(field.value)
    return [position] if position else [field.value]


def _group_pieces(data: bytes) -> list:
    fields = tc.read_struct(data)
    edits: dict[int, list] = {}
    for field in fields:
        if field.id == _GROUP_COLUMNS:
            chunks = tc.read_list(field.value)
            edits[field.id] = [tc.list_header(tc.STRUCT, len(chunks))]
            for chunk in chunks:
                edits[field.id] += _chunk_pieces(chunk)
        elif field.id == _GROUP_FILE_OFFSET:
            edits[field.id] = _position(field)
        elif field.id == _GROUP_ORDINAL:
            edits[field.id] = [_Ordinal()]
    return _pieces(fields, edits)


def _chunk_pieces(data: bytes) -> list:
    fields = tc.read_struct(data)
    edits: dict[int, list] = {}
    for field in fields:
        if field.id in _CHUNK_REFUSED:
            raise ValueError(f"cannot join a Parquet file with {_CHUNK_REFUSED[field.id]}")
        if field.id == _CHUNK_FILE_OFFSET:   # deprecated: 0 now, a position in old files
            edits[field.id] = _position(field)
        elif field.id == _CHUNK_META:
            meta = tc.read_struct(field.value)
            edits[field.id] = _pieces(meta, {f.id: _position(f) for f in meta
                                             if f.id in _META_POSITIONS})
    return _pieces(fields, edits)
