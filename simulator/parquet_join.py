"""Parquet row groups encoded where they are computed, joined into one file as they are.

A run's ``timeseries.parquet`` and ``loans.parquet`` get one row group per
chunk of replications. Encoding a row group (the Parquet writer's work) is
the larger part of writing a file; if the process that writes the run
folder encoded every chunk, it would be the bottleneck of a parallel run.
So the process that simulates a chunk also encodes it (:func:`encode`, a
one-row-group Parquet file in memory), and the run folder's file is the
parts' row groups one after the other, copied byte for byte, with one
footer that lists them all (:class:`JoinedParquet`), as parquet-mr's
``ParquetFileWriter.appendRowGroups`` joins files without decoding them.

The layout of a Parquet file (https://parquet.apache.org/docs/file-format/):
``PAR1``, the column chunks, the footer (a Thrift ``FileMetaData`` in the
compact protocol), the footer's length (4 bytes, little endian), ``PAR1``.
The footer gives the position of every page in the file, so each part's
positions move by where its bytes land. The footer is not decoded into
objects: it is copied field by field, and only the fields that hold a
position, the row count and the list of row groups are rewritten
(:mod:`.thrift_compact`), so every other field, known or not, is kept.

Every chunk goes through the same encoding whoever runs it, so a run writes
the same bytes serially, on local processes or on a Dask cluster.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import thrift_compact as tc

MAGIC = b"PAR1"
_LENGTH = struct.Struct("<i")

# Field ids of parquet.thrift (https://github.com/apache/parquet-format).
_FILE_SCHEMA, _FILE_ROWS, _FILE_ROW_GROUPS = 2, 3, 4
_GROUP_COLUMNS, _GROUP_FILE_OFFSET, _GROUP_ORDINAL = 1, 5, 7
_CHUNK_FILE_OFFSET, _CHUNK_META, _CHUNK_OFFSET_INDEX, _CHUNK_COLUMN_INDEX = 2, 3, 4, 6
_META_POSITIONS = (9, 10, 11, 14)   # data, index, dictionary page; bloom filter


def encode(table: pa.Table, schema: pa.Schema) -> bytes:
    """``table`` as a Parquet file of one row group, with the run folder's options.

    The file's schema is ``schema`` (a table built from pandas carries extra
    metadata, which the run folder's files do not record).
    """
    sink = pa.BufferOutputStream()
    # Dictionary encoding only for the text columns: on the money columns it
    # triples the writing time for a few per cent of file size.
    text = [field.name for field in schema if field.type == pa.string()]
    with pq.ParquetWriter(sink, schema, use_dictionary=text) as writer:
        writer.write_table(table, row_group_size=max(len(table), 1))
    return sink.getvalue().to_pybytes()


class JoinedParquet:
    """A Parquet file written as the row groups of parts appended one by one.

    ``append`` takes parts made by :func:`encode` with the same schema;
    ``close`` writes the footer. The file is not valid until closed.
    """

    def __init__(self, path: str | Path):
        self._file = open(path, "wb")   # noqa: SIM115 (closed by close() or abandon())
        self._file.write(MAGIC)
        self._position = len(MAGIC)
        self._first: _Footer | None = None
        self._row_groups: list[bytes] = []
        self._rows = 0

    def append(self, part: bytes) -> None:
        """Copy the row groups of ``part`` (a whole Parquet file) to the end of this file."""
        if len(part) < 12 or part[:4] != MAGIC or part[-4:] != MAGIC:
            raise ValueError("not a Parquet file")
        (length,) = _LENGTH.unpack(part[-8:-4])
        start = len(part) - 8 - length
        if not len(MAGIC) <= start < len(part) - 8:
            raise ValueError("not a Parquet file: its footer length is wrong")
        footer = _Footer(part[start:-8], shift=self._position - len(MAGIC),
                         first_ordinal=len(self._row_groups))
        if self._first is None:
            self._first = footer
        elif footer.schema != self._first.schema:
            raise ValueError("a part's schema differs from the first part's")
        self._row_groups += footer.row_groups
        self._rows += footer.rows
        self._file.write(memoryview(part)[len(MAGIC):start])
        self._position += start - len(MAGIC)

    def close(self) -> None:
        """Write the footer that lists every row group appended, and close the file."""
        if self._file.closed:
            return
        try:
            if self._first is None:
                raise ValueError("no part was appended")
            footer = self._first.joined(self._rows, self._row_groups)
            self._file.write(footer + _LENGTH.pack(len(footer)) + MAGIC)
        finally:
            self._file.close()

    def abandon(self) -> None:
        """Close the file without a footer (the caller removes it)."""
        self._file.close()

    @property
    def is_open(self) -> bool:
        return not self._file.closed


class _Footer:
    """A part's ``FileMetaData``: its fields as bytes, row groups moved by ``shift``."""

    def __init__(self, data: bytes, shift: int, first_ordinal: int):
        self.fields = tc.read_struct(data)
        self.schema = b""
        self.rows = 0
        self.row_groups: list[bytes] = []
        for field in self.fields:
            if field.id == _FILE_SCHEMA:
                self.schema = field.value
            elif field.id == _FILE_ROWS:
                self.rows = tc.read_int(field.value)
            elif field.id == _FILE_ROW_GROUPS:
                groups = tc.read_list(field.value)
                self.row_groups = [_moved_group(group, shift, first_ordinal + i)
                                   for i, group in enumerate(groups)]

    def joined(self, rows: int, row_groups: list[bytes]) -> bytes:
        """This footer with another row count and list of row groups."""
        values = {_FILE_ROWS: tc.write_int(rows),
                  _FILE_ROW_GROUPS: tc.write_list(tc.STRUCT, row_groups)}
        return tc.write_struct(self.fields, values)


def _moved(value: bytes, shift: int) -> bytes:
    return tc.write_int(tc.read_int(value) + shift)


def _moved_group(data: bytes, shift: int, ordinal: int) -> bytes:
    fields = tc.read_struct(data)
    values = {}
    for field in fields:
        if field.id == _GROUP_COLUMNS:
            values[field.id] = tc.write_list(tc.STRUCT, [
                _moved_chunk(chunk, shift) for chunk in tc.read_list(field.value)])
        elif field.id == _GROUP_FILE_OFFSET:
            values[field.id] = _moved(field.value, shift)
        elif field.id == _GROUP_ORDINAL:
            values[field.id] = tc.write_int(ordinal)
    return tc.write_struct(fields, values)


def _moved_chunk(data: bytes, shift: int) -> bytes:
    fields = tc.read_struct(data)
    values = {}
    for field in fields:
        if field.id in (_CHUNK_OFFSET_INDEX, _CHUNK_COLUMN_INDEX):
            values[field.id] = _moved(field.value, shift)
        elif field.id == _CHUNK_FILE_OFFSET and tc.read_int(field.value):
            # Deprecated: 0 in current writers, a position in older ones.
            values[field.id] = _moved(field.value, shift)
        elif field.id == _CHUNK_META:
            meta = tc.read_struct(field.value)
            values[field.id] = tc.write_struct(meta, {
                f.id: _moved(f.value, shift) for f in meta if f.id in _META_POSITIONS})
    return tc.write_struct(fields, values)
