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
``PAR1``, the column chunks, the footer (a Thrift ``FileMetaData``), the
footer's length (4 bytes, little endian) and ``PAR1``. The footer gives the
position of every page in the file, so each part's positions move by where
its bytes land. The footer is read and written with fastparquet's Thrift
codec; fields it does not know (optional by the format's rules, such as
size statistics) are dropped.

Every chunk goes through the same encoding whoever runs it, so a run writes
the same bytes serially, on local processes or on a Dask cluster.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MAGIC = b"PAR1"
_LENGTH = struct.Struct("<i")


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


def _footer(part: bytes):
    # Imported here: processes that only encode (the helpers) never load it.
    from fastparquet.cencoding import from_buffer

    if len(part) < 12 or part[:4] != MAGIC or part[-4:] != MAGIC:
        raise ValueError("not a Parquet file")
    (length,) = _LENGTH.unpack(part[-8:-4])
    start = len(part) - 8 - length
    return from_buffer(part[start:-8], "FileMetaData"), start


class JoinedParquet:
    """A Parquet file written as the row groups of parts appended one by one.

    ``append`` takes parts made by :func:`encode` with the same schema;
    ``close`` writes the footer. The file is not valid until closed.
    """

    def __init__(self, path: str | Path):
        self._file = open(path, "wb")   # noqa: SIM115 (closed by close())
        self._file.write(MAGIC)
        self._position = len(MAGIC)
        self._metadata = None
        self._schema: list[bytes] | None = None
        self._row_groups: list = []
        self._rows = 0

    def append(self, part: bytes) -> None:
        metadata, footer_start = _footer(part)
        schema = [bytes(element.to_bytes()) for element in metadata.schema]
        if self._schema is None:
            self._metadata, self._schema = metadata, schema
        elif schema != self._schema:
            raise ValueError("a part's schema differs from the first part's")
        shift = self._position - len(MAGIC)
        for group in metadata.row_groups:
            _move(group, shift)
            if group.ordinal is not None:
                group.ordinal = len(self._row_groups)
            self._row_groups.append(group)
        self._rows += metadata.num_rows
        self._file.write(memoryview(part)[len(MAGIC):footer_start])
        self._position += footer_start - len(MAGIC)

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            if self._metadata is None:
                raise ValueError("no part was appended")
            self._metadata.row_groups = self._row_groups
            self._metadata.num_rows = self._rows
            footer = bytes(self._metadata.to_bytes())
            self._file.write(footer + _LENGTH.pack(len(footer)) + MAGIC)
        finally:
            self._file.close()

    def abandon(self) -> None:
        """Close the file without a footer (the caller removes it)."""
        self._file.close()

    @property
    def is_open(self) -> bool:
        return not self._file.closed


def _move(group, shift: int) -> None:
    """Move every position a row group's metadata gives by ``shift`` bytes."""
    if group.file_offset is not None:
        group.file_offset += shift
    for chunk in group.columns:
        # Deprecated field: 0 in current writers, a position in older ones.
        if chunk.file_offset:
            chunk.file_offset += shift
        for name in ("offset_index_offset", "column_index_offset"):
            if getattr(chunk, name) is not None:
                setattr(chunk, name, getattr(chunk, name) + shift)
        meta = chunk.meta_data
        meta.data_page_offset += shift
        for name in ("dictionary_page_offset", "index_page_offset", "bloom_filter_offset"):
            if getattr(meta, name) is not None:
                setattr(meta, name, getattr(meta, name) + shift)
