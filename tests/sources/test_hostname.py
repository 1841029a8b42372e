import pytest

from exporter.sources import SourceError
from exporter.sources.hostname import parse_hostname, read_hostname
from tests.helpers import FIXTURES


@pytest.mark.parametrize(
    ("text", "name"), [("vm\n", "vm"), ("web-01.example.org\n", "web-01.example.org")], ids=["short", "fqdn"]
)
def test_parse(text, name):
    assert parse_hostname(text) == name


@pytest.mark.parametrize("text", ["", "\n", "two words\n"], ids=["empty", "blank", "space"])
def test_malformed(text):
    with pytest.raises(SourceError, match="not a hostname"):
        parse_hostname(text)


def test_read_fixture_and_missing(tmp_path):
    assert read_hostname(FIXTURES / "vm-2cpu" / "proc") == "vm"
    with pytest.raises(FileNotFoundError):
        read_hostname(tmp_path)
