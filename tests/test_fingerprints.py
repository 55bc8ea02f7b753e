"""URL canonicalisation, ids, content hashes, SimHash and the near-duplicate index."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipelines.dedup import ArchivedRef, RunIndex
from pipelines.exceptions import ArchiveConfigError
from pipelines.fingerprints import (
    article_id,
    canonicalize_url,
    content_hash,
    from_int64,
    hamming,
    registered_domain,
    same_site,
    simhash,
    to_int64,
)
from pipelines.simhash_index import SimhashIndex


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://WWW.Example.COM/News/Story/", "http://www.example.com/News/Story/"),
        ("https://example.com:443/a?utm_source=x&utm_medium=y&id=7", "https://example.com/a?id=7"),
        ("http://example.com:80/a#comments", "http://example.com/a"),
        ("https://example.com/a?fbclid=abc", "https://example.com/a"),
        ("https://example.com/a?gclid=1&b=2&a=1", "https://example.com/a?a=1&b=2"),
        ("https://example.com/a?page=2", "https://example.com/a?page=2"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://bücher.de/ä", "https://xn--bcher-kva.de/%C3%A4"),
    ],
)
def test_canonicalize_url(url, canonical):
    assert canonicalize_url(url) == canonical


def test_tracking_variants_share_one_canonical_url_and_id():
    variants = [
        "https://news.example.com/2024/05/03/story/?utm_source=home&utm_medium=web",
        "https://NEWS.example.com/2024/05/03/story/?fbclid=abc#top",
        "https://news.example.com/2024/05/03/story/?gclid=xyz",
    ]
    assert len({canonicalize_url(v) for v in variants}) == 1
    assert len({article_id(canonicalize_url(v)) for v in variants}) == 1
    assert len(article_id(canonicalize_url(variants[0]))) == 32


def test_registered_domain_and_same_site():
    assert registered_domain("https://www.bbc.co.uk/news/x") == "bbc.co.uk"
    assert registered_domain("http://127.0.0.1:8000/x") == "127.0.0.1"
    assert same_site("https://www.example.com/a", "https://amp.example.com/b")
    assert not same_site("https://example.com/a", "https://example.org/a")


def test_content_hash_ignores_case_and_whitespace_only():
    assert content_hash("Hello  World.\n\nSecond") == content_hash("hello world. second")
    assert content_hash("Hello World.") != content_hash("Hello World!")


def test_simhash_small_edit_is_near_unrelated_text_is_far():
    rng = random.Random(7)
    vocabulary = [f"word{i}" for i in range(3000)]
    story = " ".join(rng.choice(vocabulary) for _ in range(600))
    other = " ".join(rng.choice(vocabulary) for _ in range(600))
    edited = "WASHINGTON (Wire) — " + story.replace(story.split()[10], "changed", 1) + " Originally published by Wire."
    assert hamming(simhash(story), simhash(edited)) <= 7
    assert hamming(simhash(story), simhash(other)) > 7


def test_simhash_handles_scripts_without_spaces():
    text = "東京都は十四日、新しい交通計画を発表した。計画では二〇三〇年までに路線バスを全面的に電動化する。" * 8
    edited = "【共同】" + text + "この記事は共同通信の配信です。"
    assert hamming(simhash(text), simhash(edited)) <= 7


def test_int64_round_trip():
    for value in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        stored = to_int64(value)
        assert -(1 << 63) <= stored < (1 << 63)
        assert from_int64(stored) == value


def brute_nearest(stored: np.ndarray, probe: int, max_distance: int) -> tuple[int, int] | None:
    """(row, distance) of the closest stored hash within ``max_distance``, the lowest row among equals: every
    hash compared."""
    distances = np.bitwise_count(stored ^ np.uint64(probe))
    row = int(np.argmin(distances))  # the first of the least
    return (row, int(distances[row])) if distances[row] <= max_distance else None


def probes(rng: random.Random, stored: list[int], count: int) -> list[int]:
    """Hashes near stored ones (0 to 12 bits flipped), and random ones."""
    result = []
    for _ in range(count):
        probe = stored[rng.randrange(len(stored))]
        for bit in rng.sample(range(64), rng.choice([0, 1, 2, 4, 6, 7, 8, 9, 12])):
            probe ^= 1 << bit
        result.append(probe)
    return result + [rng.getrandbits(64) for _ in range(count // 4)]


@pytest.mark.parametrize("max_distance", [0, 3, 7, 12])
def test_simhash_index_answers_as_brute_force_on_random_data(max_distance):
    rng = random.Random(max_distance)
    stored = [rng.getrandbits(64) for _ in range(3000)]
    stored += [value ^ (1 << rng.randrange(64)) for value in stored[:300]]  # close pairs: ties and near ties
    stored += stored[:50]  # exact repeats: the first row wins
    grown = SimhashIndex(max_distance)
    for row, value in enumerate(stored):  # crosses several merges of the pending buffer
        grown.add(value, row)
    bulk = SimhashIndex(max_distance, hashes=np.array(stored, np.uint64))
    assert len(grown) == len(bulk) == len(stored)
    everything = np.array(stored, np.uint64)
    for probe in probes(rng, stored, 1500):
        expected = brute_nearest(everything, probe, max_distance)
        assert grown.nearest(probe) == expected, probe
        assert bulk.nearest(probe) == expected, probe


def test_simhash_index_rows_are_the_callers():
    index = SimhashIndex(7, hashes=np.array([0b1100, 0b0011], np.uint64), rows=np.array([40, 12]))
    assert index.nearest(0b1101) == (40, 1)
    assert index.nearest(0b0000) == (12, 2), "equal distances: the lower row"
    assert SimhashIndex(7).nearest(5) is None


def test_simhash_index_refuses_a_distance_it_cannot_index():
    with pytest.raises(ArchiveConfigError):
        SimhashIndex(32)


def test_archive_index_matches_by_url_hash_and_simhash():
    index = RunIndex(near_distance=7)
    ref = ArchivedRef("a" * 32, "https://e.com/story", "run1")
    index.add(ref, content_hash="ab" * 32, simhash=0b1011)
    assert index.match_url("https://e.com/story") == ref
    assert index.match_url("https://e.com/other") is None
    assert index.match_exact("ab" * 32) == ref
    assert index.match_near(0b1011 ^ 0b110) == (ref, 2)
    assert index.match_near(0b1011 ^ 0xFF00FF) is None


def test_simhash_is_trafilaturas_simhash_of_the_features():
    from trafilatura.deduplication import Simhash

    from pipelines.fingerprints import simhash_features

    texts = ["", "a", "Tokyo 東京都の天気は晴れです。", "word " * 3, STORY_FOR_SIMHASH]
    texts += [" ".join(STORY_FOR_SIMHASH.split()[i:i + n]) for i in range(0, 60, 7) for n in (5, 40, 200)]
    for text in texts:
        assert simhash(text) == Simhash(simhash_features(text), length=64).hash, text[:40]



def test_body_hashes_are_the_two_hashes_with_the_body_normalised_once():
    import re

    from pipelines.fingerprints import body_hashes, normalize_body, simhash_features

    texts = ["", "Ünïcode café — naïve_words l'été 2026, x_y", "Tokyo 東京都の天気は晴れです。", STORY_FOR_SIMHASH,
             "한국어 문장과 English words", "Straße ΣΊΣΥΦΟΣ ﬁne"]
    for text in texts:
        assert body_hashes(text) == (content_hash(text), simhash(text)), text[:40]
    for text in (texts[1], texts[3], texts[5]):  # no CJK: the features are the normalised body's words
        assert simhash_features(text) == " ".join(w for w in re.split(r"[\W_]+", normalize_body(text)) if w)


STORY_FOR_SIMHASH = (
    "The city council voted on Tuesday to extend the tram line to the northern districts, ending a decade of "
    "debate. Construction is expected to start next spring and to last three years, officials said, while "
    "residents along the route raised concerns about noise and the loss of parking. The mayor called the "
    "decision historic and promised regular public meetings during the works. Opponents said the cost, "
    "estimated at 420 million euros, would strain the budget for schools and housing for years to come."
)


def block_edges(max_distance: int) -> list[int]:
    """The bit boundaries of the max_distance + 1 pigeonhole blocks, as the index cuts them (64 bits in near-equal
    runs, the lowest bits first)."""
    blocks = max_distance + 1
    return [round(i * 64 / blocks) for i in range(blocks + 1)]


@pytest.mark.parametrize("max_distance", [0, 3, 7, 12])
def test_simhash_index_finds_a_hash_through_each_block_alone(max_distance):
    """A probe that agrees with a stored hash on one block only, with one bit flipped in every other block: at
    the distance limit, and found only by looking up that block. Every block in turn, in a bulk index and in a
    grown one (the targets among the rows already merged into its blocks)."""
    rng = random.Random(1000 + max_distance)
    stored = [rng.getrandbits(64) for _ in range(3000)]
    grown = SimhashIndex(max_distance)
    for row, value in enumerate(stored):
        grown.add(value, row)
    bulk = SimhashIndex(max_distance, hashes=np.array(stored, np.uint64))
    everything = np.array(stored, np.uint64)
    edges = block_edges(max_distance)
    spans = list(zip(edges, edges[1:]))
    for alone, _ in enumerate(spans):
        for target in rng.sample(range(1000), 25):  # the first 1000 added are merged in ``grown`` (at 1024, 2048)
            probe = stored[target]
            for block, (start, end) in enumerate(spans):
                if block != alone:
                    probe ^= 1 << rng.randrange(start, end)
            agreeing = [((probe ^ stored[target]) >> start) & ((1 << (end - start)) - 1) == 0 for start, end in spans]
            assert agreeing.count(True) == 1 and agreeing[alone], (alone, target)
            expected = brute_nearest(everything, probe, max_distance)
            assert expected == (target, max_distance), (alone, target, probe)
            assert bulk.nearest(probe) == expected, ("bulk", alone, target, probe)
            assert grown.nearest(probe) == expected, ("grown", alone, target, probe)


def brute_nearest_of(entries: list[tuple[int, int]], probe: int, max_distance: int) -> tuple[int, int] | None:
    """(row, distance) of the closest of ``entries`` (hash, row) within ``max_distance``: the least distance
    first, then the lowest row; every entry compared, in plain Python."""
    distance, row = min((hamming(value, probe), row) for value, row in entries)
    return (row, distance) if distance <= max_distance else None


def tie_families(rng: random.Random, count: int) -> tuple[list[int], list[int]]:
    """Hashes in families about ``count`` random bases, and probes that tie within a family.

    A family: the base three times, the base with bit a flipped, with bit b flipped, and with a, b, c, d flipped.
    Its probes: the base (three copies at 0), base^a (one at 0, closer than the copies at 1), base^c (the three
    copies at 1), base^a^b (the two one-bit variants at 1: distinct hashes at an equal distance), base^a^c (one
    at 1, the copies at 2)."""
    hashes, probes_ = [], []
    for _ in range(count):
        base = rng.getrandbits(64)
        a, b, c, d = (1 << bit for bit in rng.sample(range(64), 4))
        hashes += [base, base, base, base ^ a, base ^ b, base ^ a ^ b ^ c ^ d]
        probes_ += [base, base ^ a, base ^ c, base ^ a ^ b, base ^ a ^ c]
    return hashes, probes_


def tied(entries: list[tuple[int, int]], probe: int) -> list[tuple[int, int]]:
    """The entries at the least distance from ``probe``, in the order given."""
    least = min(hamming(value, probe) for value, _ in entries)
    return [(value, row) for value, row in entries if hamming(value, probe) == least]


@pytest.mark.parametrize("max_distance", [0, 3, 7, 12])
def test_simhash_index_ties_among_unmerged_rows_go_to_the_lowest_row(max_distance):
    """A fresh index grown by fewer hashes than it merges at (all of them in the buffer a lookup scans): repeated
    hashes and distinct hashes at equal distances, the rows added in no order. The closest wins, then the lowest
    row, not the first added."""
    rng = random.Random(2000 + max_distance)
    hashes, probes_ = tie_families(rng, 40)
    rows = rng.sample(range(100_000), len(hashes))
    entries = list(zip(hashes, rows))
    assert len(entries) < SimhashIndex.MIN_MERGE  # nothing merged: every lookup goes through the buffer
    index = SimhashIndex(max_distance)
    for value, row in entries:
        index.add(value, row)
    assert len(index) == len(entries)
    ties = not_first_added = 0
    for probe in probes_:
        expected = brute_nearest_of(entries, probe, max_distance)
        assert index.nearest(probe) == expected, probe
        if expected is not None and len(tied(entries, probe)) > 1:
            ties += 1
            not_first_added += tied(entries, probe)[0][1] != expected[0]
    assert ties >= 40 and not_first_added >= 20, (ties, not_first_added)  # the data holds the ties it is meant to


@pytest.mark.parametrize("max_distance", [0, 3, 7, 12])
def test_simhash_index_ties_between_merged_and_unmerged_rows_go_to_the_lowest_row(max_distance):
    """An index built in bulk from some hashes of each family, then grown by the rest (fewer than it merges at,
    so they stay in the buffer): the same ties, now between a merged and an unmerged row, the lowest row winning
    whichever side it is on."""
    rng = random.Random(3000 + max_distance)
    hashes, probes_ = tie_families(rng, 60)
    rows = rng.sample(range(100_000), len(hashes))
    entries = list(zip(hashes, rows))
    merged, unmerged = [], []
    for entry in entries:
        (merged if rng.random() < 0.5 else unmerged).append(entry)
    merged_rows = {row for _, row in merged}
    assert len(unmerged) < SimhashIndex.MIN_MERGE  # the added ones stay in the buffer
    index = SimhashIndex(max_distance, hashes=np.array([v for v, _ in merged], np.uint64),
                         rows=np.array([r for _, r in merged]))
    for value, row in unmerged:
        index.add(value, row)
    assert len(index) == len(entries)
    won_by = {"merged": 0, "unmerged": 0}
    for probe in probes_:
        expected = brute_nearest_of(entries, probe, max_distance)
        assert index.nearest(probe) == expected, probe
        sides = {"merged" if row in merged_rows else "unmerged" for _, row in tied(entries, probe)}
        if expected is not None and len(sides) == 2:
            won_by["merged" if expected[0] in merged_rows else "unmerged"] += 1
    assert min(won_by.values()) >= 10, won_by  # ties across the two sides, won by each
