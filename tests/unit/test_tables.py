"""Table building and text rendering shared by the CLI and the web app
(cli.md §1.1, §3); pure logic, no ZooKeeper."""

import pytest

from nodepool.tables import (format_age, format_cell, image_table,
                             label_table, node_table)
from nodepool.zk import ImageUpload, Node


@pytest.mark.parametrize("seconds,text", [
    (0, "00:00:00:00"), (59.9, "00:00:00:59"), (3600, "00:01:00:00"),
    (86400 * 3 + 3661, "03:01:01:01"), (86400 * 123, "123:00:00:00"),
    (-5, "00:00:00:00"), (None, ""),
])
def test_format_age(seconds, text):
    assert format_age(seconds) == text


@pytest.mark.parametrize("value,text", [
    (None, ""), ("a", "a"), (["a", "b"], "a,b"), ([], ""), (7, "7"),
    ({"k": 1}, '{"k": 1}'), (True, "True"), ([1, "x"], "1,x"),
])
def test_format_cell(value, text):
    assert format_cell(value) == text


def test_port_is_redacted_unless_an_integer():
    rows = node_table([(Node(id="1", state="ready", connection_port="pw"),
                        False),
                       (Node(id="2", state="ready", connection_port=22),
                        True)], now=0, detail=True).rows
    assert [r["connection_port"] for r in rows] == ["redacted", 22]
    assert [r["locked"] for r in rows] == ["unlocked", "locked"]


def test_rows_sorted_by_id_and_fields_select_columns():
    table = node_table([(Node(id="0000000002", state="used"), False),
                        (Node(id="0000000001", state="ready",
                              state_time=90.0), False)], now=100.0)
    assert [r["id"] for r in table.rows] == ["0000000001", "0000000002"]
    text = table.to_text(fields=["state", "id", "age"])
    assert text.splitlines() == [
        "+------------+-------+-------------+",
        "| ID         | State | Age         |",
        "+------------+-------+-------------+",
        "| 0000000001 | ready | 00:00:00:10 |",
        "| 0000000002 | used  |             |",
        "+------------+-------+-------------+",
    ]


def test_image_age_is_epoch_in_json_and_age_in_text():
    upload = ImageUpload(image="u", build_id="b", provider="p",
                         id="0000000001", state="ready",
                         state_time=1000.7, external_id="ami-1")
    table = image_table([upload], now=1000.7 + 3600)
    assert table.to_json()[0]["age"] == 1000
    assert "| 00:01:00:00 |" in table.to_text()


def test_label_table_is_a_sorted_union():
    assert label_table(["b", "a", "b"]).to_json() == [{"label": "a"},
                                                      {"label": "b"}]


def test_text_cells_escape_control_characters_json_keeps_them():
    reason = "hold\x1b[2J\x1b]0;owned\x07\nsecond line"
    table = node_table([(Node(id="0000000001", state="hold",
                              comment=reason, type=["l\x1bx"]), False)],
                       now=0, detail=True)
    text = table.to_text()
    assert "\x1b" not in text and "\x07" not in text
    assert "hold\\x1b[2J\\x1b]0;owned\\x07\\nsecond line" in text
    assert "l\\x1bx" in text
    lines = text.splitlines()
    assert len(lines) == 5                  # the row stays on one line
    assert len({len(line) for line in lines}) == 1
    assert table.to_json()[0]["comment"] == reason
