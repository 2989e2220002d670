"""Row groups encoded apart and joined byte for byte read back as one table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.parquet_join import JoinedParquet, encode

SCHEMA = pa.schema([("replication", pa.int32()), ("line", pa.string()),
                    ("date", pa.date32()), ("cents", pa.int64()), ("share", pa.float64())])


def _table(first: int, rows: int) -> pa.Table:
    return pa.table({
        "replication": pa.array([first + i // 3 for i in range(rows)], pa.int32()),
        "line": pa.array([["A", "B", "total"][i % 3] for i in range(rows)]),
        "date": pa.array([dt.date(2019, 1, 31) + dt.timedelta(days=i) for i in range(rows)]),
        "cents": pa.array([(i * 7919) % 100_003 - 50_000 for i in range(rows)], pa.int64()),
        "share": pa.array([i / 7 if i % 5 else None for i in range(rows)], pa.float64()),
    }, schema=SCHEMA)


def _join(path, parts):
    joined = JoinedParquet(path)
    for part in parts:
        joined.append(part)
    joined.close()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=6))
def test_joined_parts_read_back_as_the_concatenated_tables(tmp_path_factory, sizes):
    path = tmp_path_factory.mktemp("join") / "joined.parquet"
    tables, first = [], 0
    for rows in sizes:
        tables.append(_table(first, rows))
        first += rows
    _join(path, [encode(t, SCHEMA) for t in tables])
    back = pq.read_table(path)
    assert back.schema.equals(SCHEMA)
    assert back.equals(pa.concat_tables(tables))
    metadata = pq.read_metadata(path)
    assert metadata.num_row_groups == len(sizes)
    assert [metadata.row_group(i).num_rows for i in range(len(sizes))] == sizes


def test_row_group_statistics_and_positions_serve_filtered_reads(tmp_path):
    # A filter skips row groups by their statistics and reads the others at
    # their (moved) positions: both must be right for the rows to come back.
    tables = [_table(100 * k, 300) for k in range(4)]
    path = tmp_path / "joined.parquet"
    _join(path, [encode(t, SCHEMA) for t in tables])
    picked = pq.read_table(path, filters=[("replication", ">=", 200),
                                          ("replication", "<", 300)])
    assert picked.equals(tables[2])
    group = pq.ParquetFile(path).read_row_group(3)
    assert group.equals(tables[3])


def test_only_the_columns_readers_filter_on_carry_statistics(tmp_path):
    path = tmp_path / "joined.parquet"
    _join(path, [encode(_table(0, 30), SCHEMA), encode(_table(10, 30), SCHEMA)])
    metadata = pq.read_metadata(path)
    for group, first in ((0, 0), (1, 10)):
        columns = {metadata.schema.column(i).name: metadata.row_group(group).column(i)
                   for i in range(metadata.num_columns)}
        replication = columns["replication"].statistics
        assert (replication.min, replication.max) == (first, first + 9)
        assert columns["date"].is_stats_set and columns["line"].is_stats_set
        assert not columns["cents"].is_stats_set and not columns["share"].is_stats_set


def test_a_part_with_another_schema_is_refused(tmp_path):
    other = pa.schema([("replication", pa.int32())])
    joined = JoinedParquet(tmp_path / "joined.parquet")
    joined.append(encode(_table(0, 10), SCHEMA))
    with pytest.raises(ValueError, match="schema"):
        joined.append(encode(pa.table({"replication": pa.array([1], pa.int32())}), other))
    joined.abandon()


def test_bytes_that_are_not_parquet_are_refused(tmp_path):
    joined = JoinedParquet(tmp_path / "joined.parquet")
    with pytest.raises(ValueError, match="not a Parquet file"):
        joined.append(b"PAR1 but nothing else")
    joined.abandon()
    assert not joined.is_open


def test_a_table_from_pandas_encodes_as_the_arrow_table_does():
    table = _table(0, 50)
    from_pandas = pa.Table.from_pandas(table.to_pandas(), schema=SCHEMA, preserve_index=False)
    assert from_pandas.schema.metadata   # pandas' own metadata, not written
    assert encode(from_pandas, SCHEMA) == encode(table, SCHEMA)


def test_a_dictionary_coded_text_column_encodes_as_the_text_does():
    table = _table(0, 90)
    at = table.schema.get_field_index("line")
    coded = table.set_column(at, pa.field("line", pa.dictionary(pa.int32(), pa.string())),
                             table.column("line").dictionary_encode())
    data = encode(coded, SCHEMA)
    assert data == encode(table, SCHEMA)
    # The file records Parquet's types only: the column reads back as text.
    assert pq.read_metadata(pa.BufferReader(data)).metadata is None
    assert pq.read_table(pa.BufferReader(data)).equals(table)


def test_text_is_coded_into_the_values_given_whatever_its_form():
    from simulator.results import TEXT_CODES, text_codes

    labels = ["active", "repaid", "failed"]
    plain = ["failed", "failed", "repaid"]   # "active" unused, "failed" seen first
    forms = [np.array(plain, dtype=object), pa.array(plain),
             pa.chunked_array([pa.array(plain[:1]), pa.array(plain[1:])]),
             pa.array(plain).dictionary_encode()]
    for values in forms:
        coded = text_codes(values, labels)
        assert coded.type == TEXT_CODES
        assert coded.dictionary.to_pylist() == labels
        assert coded.indices.to_pylist() == [2, 2, 1]
    assert text_codes(coded, labels) is coded   # already so: passed as it is
    empty = pa.Table.from_pandas(pd.DataFrame({"status": pd.Series([], dtype=object)}))
    assert text_codes(empty["status"], labels).dictionary.to_pylist() == labels
    with pytest.raises(ValueError, match=r"\['defaulted'\] are none of"):
        text_codes(np.array(["repaid", "defaulted"], dtype=object), labels)


def test_columns_the_schema_stores_as_changes_are_delta_encoded():
    from simulator.results import stored_as_changes

    rows = 600
    table = pa.table({name: pa.array(np.cumsum(np.arange(rows) % 7), pa.int64())
                      for name in ("cash", "principal_repaid", "fees_paid")})
    schema = stored_as_changes(table.schema, ("cash", "principal_repaid"))
    data = encode(table, schema)
    metadata = pq.read_metadata(pa.BufferReader(data))
    encodings = {metadata.schema.column(i).name: metadata.row_group(0).column(i).encodings
                 for i in range(metadata.num_columns)}
    assert "DELTA_BINARY_PACKED" in encodings["cash"]
    assert "DELTA_BINARY_PACKED" in encodings["principal_repaid"]
    assert "DELTA_BINARY_PACKED" not in encodings["fees_paid"]
    assert pq.read_table(pa.BufferReader(data)).equals(table)   # the same values
    assert metadata.metadata is None   # the choice is not written in the file


def _footer_of(part: bytes) -> bytes:
    import struct

    (length,) = struct.unpack("<i", part[-8:-4])
    return part[-8 - length:-8]


def test_a_footer_read_field_by_field_writes_back_to_the_same_bytes():
    from simulator import thrift_compact as tc

    footer = _footer_of(encode(_table(0, 40), SCHEMA))
    fields = tc.read_struct(footer)
    assert tc.write_struct(fields) == footer
    groups = tc.read_list(next(f.value for f in fields if f.id == 4))
    assert len(groups) == 1
    assert tc.write_struct(tc.read_struct(groups[0])) == groups[0]


def test_the_first_part_alone_keeps_its_footer(tmp_path):
    # Joined alone, a part's positions do not move: the file is the part itself.
    part = encode(_table(0, 40), SCHEMA)
    _join(tmp_path / "one.parquet", [part])
    assert (tmp_path / "one.parquet").read_bytes() == part


@given(st.integers(min_value=-2**63, max_value=2**63 - 1))
def test_integers_survive_the_zigzag_varint_encoding(value):
    from simulator import thrift_compact as tc

    assert tc.read_int(tc.write_int(value)) == value


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_thrift_data_cut_short_is_an_error_not_a_wrong_file(cut):
    from simulator import thrift_compact as tc

    footer = _footer_of(encode(_table(0, 10), SCHEMA))
    with pytest.raises(ValueError, match="Thrift data"):
        tc.read_struct(footer[:-cut])


@pytest.mark.parametrize("cut", [1, 5, 20, 200])
def test_a_part_whose_footer_is_cut_short_is_refused_with_a_value_error(cut):
    import struct

    from simulator.parquet_join import read_part

    data = encode(_table(0, 10), SCHEMA)
    footer = _footer_of(data)
    start = len(data) - 8 - len(footer)
    cut_short = data[:start] + footer[:-cut] + struct.pack("<i", len(footer) - cut) + b"PAR1"
    read_part(data)   # whole, it reads
    with pytest.raises(ValueError, match="Thrift data"):
        read_part(cut_short)


def test_walking_a_struct_visits_each_field_at_its_value():
    from simulator import thrift_compact as tc

    footer = _footer_of(encode(_table(0, 40), SCHEMA))
    seen = []

    def visit(number, kind, at):
        seen.append((number, kind))
        end = tc.skip(footer, at, kind)
        assert footer[at:end] == fields[len(seen) - 1].value
        return end if number % 2 else None   # walk some values here, let walk skip others

    fields = tc.read_struct(footer)
    assert tc.walk(footer, 0, visit) == len(footer)
    assert seen == [(f.id, f.kind) for f in fields if f.kind not in (tc.TRUE, tc.FALSE)]


def test_every_kind_of_value_is_skipped_and_copied():
    from simulator import thrift_compact as tc

    inner = tc.write_struct([tc.Field(1, tc.BINARY, bytes([3]) + b"abc")])  # length, bytes
    a_map = bytes([2, tc.BINARY << 4 | tc.I32]) + b"\x01k" + tc.write_int(7) + b"\x01m" + \
        tc.write_int(-8)
    fields = [
        tc.Field(1, tc.TRUE, b""), tc.Field(2, tc.FALSE, b""),
        tc.Field(3, tc.BYTE, b"\x7f"), tc.Field(4, tc.DOUBLE, b"\x00" * 8),
        tc.Field(40, tc.I64, tc.write_int(-2**40)),          # long-form header (id jump > 15)
        tc.Field(41, tc.LIST, tc.write_list(tc.TRUE, [b"\x01", b"\x02"])),
        tc.Field(42, tc.SET, tc.write_list(tc.STRUCT, [inner] * 20)),   # long list header
        tc.Field(43, tc.MAP, a_map), tc.Field(44, tc.UUID, bytes(range(16))),
        tc.Field(45, tc.STRUCT, inner),
    ]
    encoded = tc.write_struct(fields)
    assert tc.read_struct(encoded) == fields
    assert tc.read_list(fields[6].value) == [inner] * 20
    assert tc.write_struct(tc.read_struct(encoded), {40: tc.write_int(1)}) != encoded
    assert tc.read_int(tc.read_struct(tc.write_struct(fields, {40: tc.write_int(1)}))[4].value) == 1


def test_parts_read_ahead_and_sent_between_processes_join_to_the_same_bytes(tmp_path):
    import pickle

    from simulator.parquet_join import encode_part

    tables = [_table(100 * k, 20 + 30 * k) for k in range(3)]
    _join(tmp_path / "raw.parquet", [encode(t, SCHEMA) for t in tables])
    _join(tmp_path / "read.parquet",
          [pickle.loads(pickle.dumps(encode_part(t, SCHEMA))) for t in tables])
    assert (tmp_path / "raw.parquet").read_bytes() == (tmp_path / "read.parquet").read_bytes()


def _with_ordinals(part: bytes) -> bytes:
    """The part with RowGroup.ordinal (field 7) set, as some writers set it."""
    import struct

    from simulator import thrift_compact as tc

    (length,) = struct.unpack("<i", part[-8:-4])
    start = len(part) - 8 - length
    fields = tc.read_struct(part[start:-8])
    values = {}
    for field in fields:
        if field.id == 4:
            groups = [tc.write_struct([*tc.read_struct(g), tc.Field(7, tc.I16, tc.write_int(9))])
                      for g in tc.read_list(field.value)]
            values[4] = tc.write_list(tc.STRUCT, groups)
    footer = tc.write_struct(fields, values)
    return part[:start] + footer + struct.pack("<i", len(footer)) + b"PAR1"


def test_row_group_numbers_are_set_in_order_also_for_parts_sent_pickled(tmp_path):
    import pickle
    import struct

    from simulator import thrift_compact as tc
    from simulator.parquet_join import read_part

    tables = [_table(10 * k, 30) for k in range(3)]
    parts = [pickle.loads(pickle.dumps(read_part(_with_ordinals(encode(t, SCHEMA)))))
             for t in tables]
    _join(tmp_path / "joined.parquet", parts)
    assert pq.read_table(tmp_path / "joined.parquet").equals(pa.concat_tables(tables))
    data = (tmp_path / "joined.parquet").read_bytes()
    (length,) = struct.unpack("<i", data[-8:-4])
    footer = tc.read_struct(data[-8 - length:-8])
    groups = tc.read_list(next(f.value for f in footer if f.id == 4))
    ordinals = [tc.read_int(next(f.value for f in tc.read_struct(g) if f.id == 7))
                for g in groups]
    assert ordinals == [0, 1, 2]


def test_an_empty_part_keeps_its_zero_positions(tmp_path):
    _join(tmp_path / "joined.parquet",
          [encode(_table(0, 30), SCHEMA), encode(_table(0, 0), SCHEMA)])
    empty = pq.read_metadata(tmp_path / "joined.parquet").row_group(1)
    assert empty.num_rows == 0
    assert [empty.column(i).data_page_offset for i in range(empty.num_columns)] == \
        [0] * empty.num_columns


def test_a_part_with_a_page_index_is_refused(tmp_path):
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, SCHEMA, write_page_index=True) as writer:
        writer.write_table(_table(0, 30))
    joined = JoinedParquet(tmp_path / "joined.parquet")
    with pytest.raises(ValueError, match="page index"):
        joined.append(sink.getvalue().to_pybytes())
    joined.abandon()


@pytest.mark.parametrize("data", [
    b"\x1c" * 5000, b"\x19\x1c" * 3000, b"\x16" + b"\xff" * 20 + b"\x01\x00",
], ids=["structs in structs", "lists in lists", "integer over 64 bits"])
def test_malformed_thrift_data_is_a_value_error(data):
    from simulator import thrift_compact as tc

    with pytest.raises(ValueError, match="Thrift data"):
        tc.read_struct(data)
