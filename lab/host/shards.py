"""Which of N shards runs which work item: a stable split, so N CI jobs cover a list exactly once.

::

    from lab.host.shards import parse_shard, pick
    k, n = parse_shard("2/3")
    mine = pick(nodeids, k, n)          # shard 2's items, in the order given

Each job computes the whole assignment for itself and keeps its own part, so the jobs never talk
to each other: the split has to come out the same in every job. It depends only on the set of
items (and their weights), never on the order they arrive in (pytest's collection order, a
``set``'s iteration order): the items are sorted by descending weight, then by name, and each is
put on the shard that is lightest so far (ties: the lowest shard index). With no weights every
item weighs 1, so the shards' sizes differ by at most one.

Standard library only, so that the test suite's conftest can use it before anything is installed
beyond pytest.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence

__all__ = ["parse_shard", "assign", "pick"]

_SHARD = re.compile(r"([0-9]+)/([0-9]+)")
_ACCEPTED = "give K/N, such as 1/3"


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)``, with 1 <= K <= N; anything else is a ValueError saying why."""
    match = _SHARD.fullmatch(text)
    if match is None:
        raise ValueError(f"--shard {text!r}: not of the form K/N with whole numbers; {_ACCEPTED}")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1:
        raise ValueError(f"--shard {text}: N must be at least 1; {_ACCEPTED}")
    if not 1 <= k <= n:
        raise ValueError(f"--shard {text}: K must be between 1 and N; {_ACCEPTED}")
    return k, n


def _check_n(n: int) -> None:
    # bool is an int, but a True here is a mistake, not "one shard".
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of shards must be a whole number of at least 1, not {n!r}")


def _weights_of(items: Sequence[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    if not weights:
        return dict.fromkeys(items, 1.0)
    for name, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise ValueError(f"weight of {name!r} is {weight!r}; a weight is a finite number >= 0 "
                             "(seconds a test took, for instance)")
    # An item with no weight yet (a new test) counts as a typical one, not as free or as the heaviest.
    typical = float(statistics.median(weights.values()))
    return {item: float(weights.get(item, typical)) for item in items}


def assign(items: Sequence[str], n: int, weights: Mapping[str, float] | None = None) -> list[list[str]]:
    """``n`` lists that hold every item exactly once, as evenly weighted as a greedy pass makes them.

    Each list is in placement order (heaviest first). ``weights`` maps an item to its weight;
    items it does not name get the median of the weights it gives (1 if it gives none). A
    duplicate item is a ValueError: it could only land on two shards or silently vanish.
    """
    _check_n(n)
    twice = sorted(item for item, count in Counter(items).items() if count > 1)
    if twice:
        raise ValueError(f"items must be distinct; given more than once: {', '.join(map(repr, twice))}")
    weight = _weights_of(items, weights)
    shards: list[list[str]] = [[] for _ in range(n)]
    loads = [0.0] * n
    for item in sorted(items, key=lambda name: (-weight[name], name)):
        # min() keeps the first of equal loads: the lowest index, so ties break the same way everywhere.
        lightest = min(range(n), key=loads.__getitem__)
        shards[lightest].append(item)
        loads[lightest] += weight[item]
    return shards


def pick(items: Sequence[str], k: int, n: int, weights: Mapping[str, float] | None = None) -> list[str]:
    """Shard ``k``'s items (``k`` counts from 1, as in ``--shard K/N``), in the order ``items`` gives them."""
    _check_n(n)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"shard {k!r} of {n}: K must be a whole number between 1 and {n}")
    mine = set(assign(items, n, weights)[k - 1])
    return [item for item in items if item in mine]
