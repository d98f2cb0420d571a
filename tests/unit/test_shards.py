"""lab/host/shards.py: every item on exactly one shard, the same split whatever the input order, balanced weights."""

from __future__ import annotations

import random

import pytest

from lab.host.shards import assign, parse_shard, pick

# 41: not a multiple of any shard count from 2 to 8, so some shards are one item longer than others.
FORTY_ONE = [f"tests/unit/test_{i:02d}.py::test_case" for i in range(41)]
ITEM_LISTS = {
    "empty": [],
    "one": ["only"],
    "three": ["c", "a", "b"],        # fewer items than most shard counts below
    "forty-one": FORTY_ONE,
}


@pytest.mark.parametrize("n", range(1, 9))
@pytest.mark.parametrize("which", list(ITEM_LISTS))
def test_every_item_is_on_exactly_one_shard(which: str, n: int) -> None:
    items = ITEM_LISTS[which]
    shards = assign(items, n)
    assert len(shards) == n
    placed = [item for shard in shards for item in shard]
    assert sorted(placed) == sorted(items)                    # the union is the items, none twice
    picked = [item for k in range(1, n + 1) for item in pick(items, k, n)]
    assert sorted(picked) == sorted(items)


@pytest.mark.parametrize("n", range(1, 9))
def test_unweighted_shards_differ_in_size_by_at_most_one(n: int) -> None:
    sizes = [len(shard) for shard in assign(FORTY_ONE, n)]
    # The lowest shards get the extra items: ties go to the lowest index.
    assert sizes == [41 // n + (1 if k < 41 % n else 0) for k in range(n)]


def test_fewer_items_than_shards_leaves_the_last_shards_empty() -> None:
    assert assign(["c", "a", "b"], 5) == [["a"], ["b"], ["c"], [], []]
    assert pick(["c", "a", "b"], 5, 5) == []


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_the_split_does_not_depend_on_the_input_order(n: int) -> None:
    weights = {name: float(i % 7) for i, name in enumerate(FORTY_ONE)}
    shuffled = FORTY_ONE[:]
    random.Random(1234).shuffle(shuffled)
    assert assign(shuffled, n) == assign(FORTY_ONE, n) == assign(FORTY_ONE[::-1], n)
    assert assign(shuffled, n, weights) == assign(FORTY_ONE, n, weights)
    for k in range(1, n + 1):
        assert sorted(pick(shuffled, k, n)) == sorted(pick(FORTY_ONE, k, n))


def test_unweighted_items_go_round_robin_by_name_and_pick_keeps_the_input_order() -> None:
    items = ["d", "b", "a", "c", "e"]
    assert assign(items, 2) == [["a", "c", "e"], ["b", "d"]]
    assert pick(items, 1, 2) == ["a", "c", "e"]
    assert pick(items, 2, 2) == ["d", "b"]                    # as given, not as sorted


def test_weights_balance_the_shards() -> None:
    weights = {"a": 5, "b": 4, "c": 3, "d": 3, "e": 2, "f": 1}
    # a→1 (5), b→2 (4), c→2 (7), d→1 (8), e→2 (9), f→1 (9): both shards weigh 9, with 3 items each.
    assert assign(list("fedcba"), 2, weights) == [["a", "d", "f"], ["b", "c", "e"]]
    # Counting items alone would have put a, c, e (10) against b, d, f (8).
    assert assign(list("fedcba"), 2) == [["a", "c", "e"], ["b", "d", "f"]]


def test_an_item_without_a_weight_weighs_the_median_of_the_given_ones() -> None:
    weights = {"a": 10, "b": 2, "c": 4}                       # median 4: x and y weigh 4 each
    # a (10) → 1; c, x, y (4 each) → 2, reaching 12; b (2) → 1, reaching 12.
    assert assign(["a", "b", "c", "x", "y"], 2, weights) == [["a", "b"], ["c", "x", "y"]]
    # No weights at all (an empty mapping, too): every item weighs 1.
    assert assign(["a", "b", "c"], 2, {}) == assign(["a", "b", "c"], 2) == [["a", "c"], ["b"]]


def test_a_duplicate_item_is_refused_by_name() -> None:
    with pytest.raises(ValueError) as raised:
        assign(["a", "b", "a", "c", "c"], 2)
    assert str(raised.value) == "items must be distinct; given more than once: 'a', 'c'"
    with pytest.raises(ValueError, match="given more than once: 'a'"):
        pick(["a", "a"], 1, 2)


@pytest.mark.parametrize(("weight", "shown"), [(-1, "-1"), (float("nan"), "nan"), (float("inf"), "inf"),
                                               ("3", "'3'")])
def test_a_weight_that_is_not_a_finite_non_negative_number_is_refused(weight: object, shown: str) -> None:
    with pytest.raises(ValueError) as raised:
        assign(["a", "b"], 2, {"a": 1, "b": weight})  # type: ignore[dict-item]
    assert str(raised.value) == (f"weight of 'b' is {shown}; a weight is a finite number >= 0 "
                                 "(seconds a test took, for instance)")


@pytest.mark.parametrize("n", [0, -1, True, 2.0])
def test_a_shard_count_below_one_or_not_whole_is_refused(n: object) -> None:
    with pytest.raises(ValueError) as raised:
        assign(["a"], n)  # type: ignore[arg-type]
    assert str(raised.value) == f"the number of shards must be a whole number of at least 1, not {n!r}"


@pytest.mark.parametrize("k", [0, 3])
def test_picking_a_shard_outside_1_to_n_is_refused(k: int) -> None:
    with pytest.raises(ValueError) as raised:
        pick(["a", "b"], k, 2)
    assert str(raised.value) == f"shard {k} of 2: K must be a whole number between 1 and 2"


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), ("2/3", (2, 3)), ("3/3", (3, 3)),
                                                ("12/40", (12, 40))])
def test_parse_shard_reads_k_of_n(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("0/3", "--shard 0/3: K must be between 1 and N; give K/N, such as 1/3"),
    ("4/3", "--shard 4/3: K must be between 1 and N; give K/N, such as 1/3"),
    ("1/0", "--shard 1/0: N must be at least 1; give K/N, such as 1/3"),
    ("3", "--shard '3': not of the form K/N with whole numbers; give K/N, such as 1/3"),
    ("a/b", "--shard 'a/b': not of the form K/N with whole numbers; give K/N, such as 1/3"),
    ("", "--shard '': not of the form K/N with whole numbers; give K/N, such as 1/3"),
    ("-1/3", "--shard '-1/3': not of the form K/N with whole numbers; give K/N, such as 1/3"),
    (" 1/3", "--shard ' 1/3': not of the form K/N with whole numbers; give K/N, such as 1/3"),
])
def test_parse_shard_says_what_was_given_and_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_shard(text)
    assert str(raised.value) == message
