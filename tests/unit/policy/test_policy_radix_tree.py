"""The approximate radix tree (SGLang): per-tenant matching, the first-holder tie rule and
LRU eviction by size."""

from __future__ import annotations

import random

from policy_helpers import chain

from lodestar.policy.radix_tree import ApproxRadixTree

X = chain(1, 2, 3)
Y = chain(5, 6)
XZ = chain(1, 2, 9, 9)  # shares 2 blocks with X


def test_match_per_tenant() -> None:
    tree = ApproxRadixTree()
    tree.insert(X, "a", 0.0)
    tree.insert(XZ, "b", 1.0)
    assert tree.match(X, ["a", "b", "c"]) == [3, 2, 0]
    assert tree.match(XZ, ["a", "b"]) == [2, 4]
    assert tree.size_blocks("a") == 3 and tree.size_blocks("b") == 4
    assert len(tree) == 5  # blocks 1, 2 shared; 3; 9, 9
    assert tree.match((), ["a"]) == [0]


def test_first_holder_is_the_tenant_that_joined_first() -> None:
    tree = ApproxRadixTree()
    tree.insert(X, "b", 0.0)
    tree.insert(X, "a", 1.0)
    tree.insert(X, "b", 2.0)
    assert tree.first_holder(X[-1], ["a", "b"]) == "b"
    assert tree.first_holder(X[-1], ["a"]) == "a"
    assert tree.first_holder(X[-1], ["c"]) is None
    assert tree.first_holder(Y[0], ["a"]) is None


def test_eviction_removes_least_recent_leaves_until_under_size() -> None:
    tree = ApproxRadixTree()
    tree.insert(X, "a", 0.0)
    tree.insert(Y, "a", 1.0)
    tree.evict_tenant_by_size(3)  # 5 blocks → 3: X's leaf (t=0), then X's middle block
    assert tree.match(X, ["a"]) == [1]
    assert tree.match(Y, ["a"]) == [2]
    assert tree.size_blocks("a") == 3


def test_eviction_is_per_tenant_and_keeps_shared_nodes() -> None:
    tree = ApproxRadixTree()
    tree.insert(X, "a", 0.0)
    tree.insert(X, "b", 0.5)
    tree.insert(Y, "a", 1.0)
    tree.evict_tenant_by_size(3)  # a: 5 → 3 (X's two deepest blocks); b (3) untouched
    assert tree.match(X, ["a", "b"]) == [1, 3]
    assert tree.match(Y, ["a"]) == [2]
    assert tree.size_blocks("b") == 3


def test_a_touched_prefix_outlives_an_untouched_one() -> None:
    tree = ApproxRadixTree()
    tree.insert(X, "a", 0.0)
    tree.insert(Y, "a", 1.0)
    tree.insert(X, "a", 2.0)  # the end of X is refreshed
    tree.evict_tenant_by_size(3)
    assert tree.match(X, ["a"]) == [3]
    assert tree.match(Y, ["a"]) == [0]


def test_remove_tenant() -> None:
    tree = ApproxRadixTree()
    tree.insert(X, "a", 0.0)
    tree.insert(XZ, "b", 0.0)
    tree.remove_tenant("a")
    assert tree.match(X, ["a", "b"]) == [0, 2]
    assert tree.tenants() == ["b"] and len(tree) == 4


def test_random_inserts_and_evictions_keep_sizes_and_prefix_closure() -> None:
    rng = random.Random(1)
    tree = ApproxRadixTree()
    for k in range(300):
        blocks = chain(rng.randrange(3), rng.randrange(4), *rng.sample(range(30), rng.randrange(5)))
        tree.insert(blocks, rng.choice("abc"), float(k))
        if k % 25 == 0:
            tree.evict_tenant_by_size(12)
            assert all(tree.size_blocks(t) <= 12 for t in "abc")
    nodes = tree._nodes
    for t in "abc":
        held = [h for h, n in nodes.items() if t in n.tenants]
        assert len(held) == tree.size_blocks(t)
        for h in held:  # every held node's parent is held too
            parent = nodes[h].parent
            assert parent is None or t in nodes[parent].tenants
