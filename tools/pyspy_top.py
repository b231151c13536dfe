"""Where a py-spy recording spent its samples: top functions, self and total.

``py-spy record --format raw`` writes one line per distinct stack,
``thread;outer (file:line);...;inner (file:line) COUNT``.  This prints the
functions holding the most samples as the innermost frame (self) and
anywhere on the stack (total), with the line numbers folded away, and the
share of each entry point (the outermost project frame of a stack: which
worker's loop the time went to).  ``tools.bench_aws --profile`` writes such files.

    python -m tools.pyspy_top DIR/burst1000-0.pyspy.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

_LINE = re.compile(r":\d+\)$")


def function_of(frame: str) -> str:
    """``name (file:line)`` without the line: one entry per function."""
    return _LINE.sub(")", frame.strip())


def read_stacks(path: str) -> list[tuple[list[str], int]]:
    stacks = []
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack and count.isdigit():
                stacks.append((stack.split(";"), int(count)))
    return stacks


def summarise(stacks: list[tuple[list[str], int]]
              ) -> tuple[int, Counter, Counter, Counter]:
    """Samples in all, by innermost function, by function anywhere on the
    stack (counted once per stack), by entry point (the outermost frame in
    ``nodepool/``, else the outermost frame)."""
    total = 0
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    entries: Counter[str] = Counter()
    for frames, count in stacks:
        total += count
        functions = [function_of(f) for f in frames]
        ours = [f for f in functions if "nodepool/" in f]
        entries[(ours or functions or ["?"])[0]] += count
        if functions:
            own[functions[-1]] += count
        for name in set(functions):
            anywhere[name] += count
    return total, own, anywhere, entries


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path")
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args(argv)
    total, own, anywhere, entries = summarise(read_stacks(args.path))
    if not total:
        print(f"{args.path}: no samples")
        return 1
    for title, counter in (("self", own), ("total", anywhere),
                           ("entry points", entries)):
        print(f"-- {title} (% of {total} samples)")
        for name, count in counter.most_common(args.top):
            print(f"{100 * count / total:6.1f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
