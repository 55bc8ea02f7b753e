"""Schema drift: the record types and the dataset schemas must agree, column by column."""

from __future__ import annotations

import dataclasses
import typing
from datetime import date, datetime

import pyarrow as pa
import pytest

from pipelines.records import RECORD_TYPES
from schemas import DATASETS, SCHEMA_VERSION_KEY, description, schema_version

PY_TO_ARROW = {
    str: (pa.string(),),
    int: (pa.int16(), pa.int32(), pa.int64()),
    bool: (pa.bool_(),),
    datetime: (pa.timestamp("us", tz="UTC"),),
    date: (pa.date32(),),
    list[str]: (pa.list_(pa.string()),),
}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_record_fields_match_schema_columns(dataset):
    schema, record_type = DATASETS[dataset], RECORD_TYPES[dataset]
    hints = typing.get_type_hints(record_type)
    fields = [f.name for f in dataclasses.fields(record_type)]
    assert fields == schema.names, "same columns in the same order"
    for name in fields:
        hint = hints[name]
        optional = type(None) in typing.get_args(hint)
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
        field = schema.field(name)
        assert field.type in PY_TO_ARROW[base], f"{dataset}.{name}: {hint} vs {field.type}"
        assert field.nullable == optional, f"{dataset}.{name}: nullable {field.nullable}, record says {hint}"


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_column_is_described_and_versioned(dataset):
    schema = DATASETS[dataset]
    assert SCHEMA_VERSION_KEY in schema.metadata and schema_version(schema) >= 1
    for name in schema.names:
        assert len(description(schema, name)) > 10, name
