"""The descriptors the app gives the sources' held files, by the descriptor limit it starts with."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from exporter.app import HELD_FILES
from tests.helpers import ROOT

_HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def held_files_at(soft: int, hard: int) -> tuple[int, int]:
    """held_files() in a process started with that limit, and the soft limit it leaves."""
    code = (
        "import resource\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))\n"
        "from exporter.app import held_files\n"
        "print(held_files(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    files, left = out.stdout.split()
    return int(files), int(left)


def test_at_a_low_hard_limit_a_quarter_of_it_is_held():
    assert held_files_at(400, 400) == (100, 400)


@pytest.mark.skipif(_HARD != resource.RLIM_INFINITY and _HARD < 4 * HELD_FILES, reason="hard limit too low")
def test_the_soft_limit_is_raised_to_the_hard_one_first():
    hard = 4 * HELD_FILES
    assert held_files_at(256, hard) == (HELD_FILES, hard)
