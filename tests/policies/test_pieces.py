"""JSON a member at a time (`policies.pieces`): the same text and values as the json module's."""

from __future__ import annotations

import json
import math

import pytest
from policy_estates import estate, policy, service

from policies import Health, WeightTable, evaluate, pieces

T0 = 1_700_000_000.0

DOCS = [
    {},
    {"a": 1},
    {"a": {"b": {"c": [1, 2.5, None, True, "é\u2028\n"]}}, "z": []},
    {"rows": {f"s{i}": {"dc1": {"total": i, "cells": {}}} for i in range(100)}, "g": 1e300},
    [1, {"a": 2}],
    "text",
    3,
    {"\u0000key": "\ud800"},  # a lone surrogate, escaped
]


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_the_text_is_json_dumps_text_and_reads_back(doc: object, depth: int) -> None:
    text = pieces.dumps(doc, depth=depth)
    assert text == json.dumps(doc, separators=(",", ":"))
    assert pieces.loads(text, depth=depth) == doc
    assert pieces.loads(text.encode(), depth=depth) == doc


def test_a_table_is_the_same_text_as_before_and_decodes_to_itself() -> None:
    p = policy()
    table = evaluate(
        estate(*(service(f"s{i:02d}", p) for i in range(30))), Health(), [], None, T0
    ).table
    body = table.to_json()
    assert body == json.dumps(table.to_dict(), separators=(",", ":")).encode()
    assert WeightTable.from_json(body) == table


def test_objects_that_are_not_all_string_keyed_are_written_whole() -> None:
    doc = {1: "a", "b": {2: 3}}
    assert pieces.dumps(doc) == json.dumps(doc, separators=(",", ":"))


def test_values_json_cannot_write_go_through_default() -> None:
    assert pieces.dumps({"s": {3, 1, 2}}, default=sorted) == '{"s":[1,2,3]}'
    with pytest.raises(TypeError):
        pieces.dumps({"s": {1}})


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "{",
        '{"a":1,}',
        '{"a" 1}',
        '{"a":1} x',
        '{"a":[1,2}',
        "{1:2}",
        '{"a":{"b":1,,}}',
        '{"a":{"b":}}',
        '{"a":1}{}',
    ],
)
def test_bad_text_fails_as_json_loads_does(bad: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(bad)
    with pytest.raises(json.JSONDecodeError) as got:
        pieces.loads(bad)
    assert (got.value.msg, got.value.pos) == (expected.value.msg, expected.value.pos)


def test_what_json_loads_reads_is_read_the_same() -> None:
    text = ' {\n "a" : { "b" : [ 1 ] , "b" : NaN } ,\t"c":{} } \r\n'
    got = pieces.loads(text)
    assert got.keys() == {"a", "c"} and math.isnan(got["a"]["b"]) and got["c"] == {}


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(ValueError):
        pieces.loads(b'{"a":"\xff"}')
