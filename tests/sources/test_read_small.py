import os
import threading

import pytest

from exporter.sources import SMALL_LIMIT, SourceError, read_small


@pytest.mark.parametrize("short_read_ends", [False, True], ids=["to-eof", "short-read-ends"])
@pytest.mark.parametrize(
    "size", [0, 1, 65535, 65536, 3 * 65536 + 5], ids=["empty", "one", "below-chunk", "chunk", "chunks"]
)
def test_reads_the_whole_file(tmp_path, size, short_read_ends):
    path = tmp_path / "f"
    data = bytes(ord("a") + i % 26 for i in range(size))
    path.write_bytes(data)
    assert read_small(path, short_read_ends=short_read_ends) == data.decode()


def test_default_limit_is_one_mebibyte():
    assert SMALL_LIMIT == 1 << 20


@pytest.mark.parametrize("limit", [10, 65536, 65537, SMALL_LIMIT])
def test_a_file_at_the_limit_is_read_and_one_byte_more_is_refused_naming_it(tmp_path, limit):
    path = tmp_path / "big"
    path.write_bytes(b"x" * limit)
    assert len(read_small(path, limit)) == limit
    path.write_bytes(b"x" * (limit + 1))
    with pytest.raises(SourceError, match=rf"^{path}: larger than {limit} bytes$"):
        read_small(path, limit)


def test_missing_file_is_an_oserror_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        read_small(tmp_path / "gone")
    assert e.value.filename == str(tmp_path / "gone")


def test_bytes_that_are_not_utf8_reach_the_parser_as_replacement_characters(tmp_path):
    (tmp_path / "f").write_bytes(b"cpu MHz : 2\xff00\n")
    assert read_small(tmp_path / "f") == "cpu MHz : 2\ufffd00\n"


@pytest.mark.parametrize("short_read_ends", [False, True], ids=["to-eof", "short-read-ends"])
def test_a_short_read_ends_the_file_only_when_asked(tmp_path, short_read_ends):
    """A FIFO returns what was written so far, as a record-by-record seq_file returns about a page."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    returned = threading.Event()

    def writer() -> None:
        with open(fifo, "wb", buffering=0) as f:
            f.write(b"first ")
            if short_read_ends:
                returned.wait()  # the reader must stop after the first, short read
            else:
                f.write(b"second")  # the reader must keep reading until the writer closes

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        text = read_small(fifo, short_read_ends=short_read_ends)
    finally:
        returned.set()
        thread.join()
    assert text == ("first " if short_read_ends else "first second")
