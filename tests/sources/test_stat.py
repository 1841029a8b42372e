import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources import SourceError
from exporter.sources.stat import parse_stat, parse_stat_rows

MODERN = textwrap.dedent("""\
    cpu  300 10 200 5000 20 0 5 1 40 2
    cpu0 100 5 100 2500 10 0 2 1 20 1
    cpu1 200 5 100 2500 10 0 3 0 20 1
    intr 1 2 3
    ctxt 99
""")


def test_modern_kernel_converts_ticks_once_and_keeps_guest_apart():
    cpus = parse_stat(MODERN, hz=100)
    assert sorted(cpus) == [0, 1]
    assert cpus[0].seconds == {
        "user": 1.0,
        "nice": 0.05,
        "system": 1.0,
        "idle": 25.0,
        "iowait": 0.1,
        "irq": 0.0,
        "softirq": 0.02,
        "steal": 0.01,
    }
    assert cpus[0].guest_seconds == {"guest": 0.2, "guest_nice": 0.01}


@pytest.mark.parametrize(
    ("text", "seconds_keys", "guest_keys"),
    [
        ("cpu0 1 2 3 4\n", {"user", "nice", "system", "idle"}, set()),
        ("cpu0 1 2 3 4 5 6 7 8\n", {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}, set()),
        (
            "cpu0 1 2 3 4 5 6 7 8 9\n",
            {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"},
            {"guest"},
        ),
        (
            "cpu0 1 2 3 4 5 6 7 8 9 10 11 12\n",
            {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"},
            {"guest", "guest_nice"},
        ),
    ],
    ids=["2.6-four-columns", "2.6.11-steal", "2.6.24-guest", "future-extra-columns"],
)
def test_column_count_follows_kernel_version(text, seconds_keys, guest_keys):
    cpu = parse_stat(text, hz=100)[0]
    assert set(cpu.seconds) == seconds_keys
    assert set(cpu.guest_seconds) == guest_keys


def test_offline_cpu_is_absent():
    assert sorted(parse_stat("cpu0 1 2 3 4\ncpu2 1 2 3 4\n", hz=100)) == [0, 2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no per-CPU lines"),
        ("cpu  1 2 3 4\nintr 1\n", "no per-CPU lines"),
        ("cpu0 1 2\n", "cpu0 has 2 columns"),
        ("cpu0 1 2 x 4\n", "not an unsigned integer"),
        ("cpuX 1 2 3 4\n", "unexpected CPU name"),
        ("cpu0 1 2 3 4\ncpu0 1 2 3 4\n", "appears twice"),
        ("cpu\u00b2 1 2 3 4\n", "unexpected CPU name"),
        ("cpu0 1 -2 3 4\n", "not an unsigned integer"),
        ("cpu0 1 2_0 3 4\n", "not an unsigned integer"),
        (f"cpu0 1 2 {2**64} 4\n", "beyond 64 bits"),
    ],
    ids=[
        "empty",
        "aggregate-only",
        "truncated-line",
        "garbage-column",
        "bad-name",
        "duplicate",
        "superscript-cpu-number",
        "negative",
        "underscore",
        "beyond-64-bits",
    ],
)
def test_malformed(text, message):
    with pytest.raises(SourceError, match=message) as info:
        parse_stat(text, hz=100, path="/x/stat")
    assert "/x/stat" in str(info.value)


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        (
            MODERN,
            {
                0: (1.0, 0.05, 1.0, 25.0, 0.1, 0.0, 0.02, 0.01, 0.2, 0.01),
                1: (2.0, 0.05, 1.0, 25.0, 0.1, 0.0, 0.03, 0.0, 0.2, 0.01),
            },
        ),
        (
            "cpu0 1 2 3 4\ncpu3 1 2 3 4 5 6 7 8 9 10 11\ncpu1 5 6 7 8 9\n",
            {0: (0.01, 0.02, 0.03, 0.04), 3: tuple(v / 100 for v in range(1, 11)), 1: (0.05, 0.06, 0.07, 0.08, 0.09)},
        ),
    ],
    ids=["same-columns", "columns-differ-by-line"],
)
def test_rows_hold_each_line_s_columns_in_order(text, rows):
    got = parse_stat_rows(text, hz=100)
    assert got == rows
    assert list(got) == list(rows)  # in the file's order


def _stat_text(rows: dict[int, list[int]]) -> str:
    return "cpu  1 2 3 4\n" + "".join(f"cpu{cpu} {' '.join(map(str, row))}\n" for cpu, row in rows.items()) + "intr 1\n"


_TICKS = st.sampled_from([0, 7, 100, 12345, 2**64 - 1, 10**19, 2**64, 10**20])
_STAT_ROWS = st.integers(4, 11).flatmap(
    lambda width: st.dictionaries(st.integers(0, 5), st.lists(_TICKS, min_size=width, max_size=width), max_size=4)
)


@settings(max_examples=500, deadline=None, database=None)
@given(st.lists(st.tuples(_STAT_ROWS, st.sampled_from([100, 250])), min_size=1, max_size=4), st.randoms())
def test_a_memo_of_the_last_parse_gives_the_rows_the_text_gives(texts, random):
    """Columns that moved or not, CPUs gone, another USER_HZ, texts that fail: with the last parse's columns
    (StatMemo), each parse is what parsing its text alone gives, value or error."""
    from exporter.sources.stat import StatMemo

    memo = StatMemo()
    last: dict[int, list[int]] = {}
    for rows, hz in texts:
        if last and random.random() < 0.5:  # the last text with a few columns moved
            rows = {cpu: [t + random.choice([0, 0, 1, 30]) for t in row] for cpu, row in last.items()}
        last = rows
        text = _stat_text(rows)
        try:
            expected: object = parse_stat_rows(text, hz)
        except SourceError as e:
            expected = str(e)
        try:
            got: object = parse_stat_rows(text, hz, memo=memo)
        except SourceError as e:
            got = str(e)
        assert got == expected


def test_a_memo_converts_only_the_columns_that_moved():
    from exporter.sources.stat import StatMemo

    memo = StatMemo()
    first = parse_stat_rows("cpu0 1 2 3 4\ncpu1 5 6 7 8\n", 100, memo=memo)
    assert memo.columns == ["1", "2", "3", "4", "5", "6", "7", "8"]
    kept = memo.seconds
    second = parse_stat_rows("cpu0 1 2 3 9\ncpu1 5 6 7 8\n", 100, memo=memo)
    assert second == {0: (0.01, 0.02, 0.03, 0.09), 1: first[1]}
    assert [a is b for a, b in zip(memo.seconds, kept, strict=True)] == [True] * 3 + [False] + [True] * 4
