"""The object census SIGUSR2 appends to its stack dump: the most common
tracked types with their counts, so two dumps show what a process keeps."""

from __future__ import annotations

from nodepool.cmd.common import object_census, stack_dump


class Kept:
    pass


def test_the_census_counts_what_the_process_keeps():
    kept = [Kept() for _ in range(200000)]
    lines = object_census(top=5).splitlines()
    assert lines[0].startswith("Objects tracked by the garbage collector: ")
    assert len(lines) == 6
    counts = {line.split()[1]: int(line.split()[0]) for line in lines[1:]}
    assert counts[f"{__name__}.Kept"] >= 200000
    assert list(counts.values()) == sorted(counts.values(), reverse=True)
    del kept


def test_the_stack_dump_ends_with_the_census():
    dump = stack_dump()
    assert "test_the_stack_dump_ends_with_the_census" in dump
    assert "Objects tracked by the garbage collector" in dump.split(
        "Thread ")[-1]
