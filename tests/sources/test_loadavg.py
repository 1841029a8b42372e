from __future__ import annotations

import pytest

from exporter.sources import SourceError
from exporter.sources.loadavg import LoadAvg, parse_loadavg, read_loadavg
from tests.helpers import FIXTURES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.20 0.18 0.12 1/80 11206\n", LoadAvg(0.2, 0.18, 0.12)),
        ("12.50 8.00 4.25 3/1201 4242 extra\n", LoadAvg(12.5, 8.0, 4.25)),  # columns after the averages ignored
        ("0.00 0.00 0.00\n", LoadAvg(0.0, 0.0, 0.0)),  # only the averages (older or trimmed files)
    ],
    ids=["kernel", "extra-columns", "averages-only"],
)
def test_parse(text, expected):
    assert parse_loadavg(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "0.20 0.18", "a b c 1/2 3", "nan 0 0 1/1 1", "-1 0 0 1/1 1", "inf 0 0"],
    ids=["empty", "truncated", "not-numbers", "nan", "negative", "inf"],
)
def test_malformed(text):
    with pytest.raises(SourceError, match="/proc/loadavg"):
        parse_loadavg(text)


def test_read_fixture_and_missing(tmp_path):
    assert read_loadavg(FIXTURES / "vm-2cpu" / "proc") == LoadAvg(2.71, 1.67, 0.93)
    with pytest.raises(FileNotFoundError):
        read_loadavg(tmp_path)
