"""Measure where the near-duplicate threshold must lie.

For every ground-truth body of ../shared/corpus (distinct articles, except the
two known captures of one Lifehacker story), compute trafilatura's 64-bit
SimHash and report:

* the Hamming distances between distinct articles (the threshold must stay
  below the smallest of these, with a margin), and
* the distances between each article and syndicated near-copies of it made
  with small edits: a wire-service prefix, a few words changed, a sentence of
  boilerplate appended, a paragraph dropped (the threshold must reach the
  largest of these).

Run: python benchmarks/simhash_threshold.py [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.fingerprints import hamming, simhash  # noqa: E402

#: pairs of corpus pages that are one story (two captures of the same URL)
KNOWN_SAME_STORY = {
    frozenset({"lifehacker-post-comment-load", "lifehacker-working"}),
    frozenset({"de-Taz_2023_04_28", "de-Taz_2024_10_23"}),
}


def load_bodies(corpus: Path, min_chars: int = 1000) -> dict[str, str]:
    bodies = {}
    for dataset in ("fundus", "mozilla-readability"):
        truth = json.loads((corpus / dataset / "ground_truth.json").read_text(encoding="utf-8"))
        for page_id, record in truth.items():
            if record["page_type"] in ("news", "magazine_or_blog_article") and len(record["body"]) >= min_chars:
                bodies[page_id] = record["body"]
    return bodies


def syndicate(body: str, rng: random.Random, *, edits: int = 3, drop_paragraph: bool = False) -> str:
    """A syndicated copy: a dateline prefix, ``edits`` words changed, a credit line appended."""
    paragraphs = body.split("\n\n")
    if drop_paragraph and len(paragraphs) > 4:
        del paragraphs[rng.randrange(1, len(paragraphs) - 1)]
    text = "\n\n".join(paragraphs)
    spaced = text.count(" ") > len(text) / 20  # scripts without spaces get character edits instead
    words = text.split(" ") if spaced else list(text)
    for _ in range(edits):
        i = rng.randrange(len(words))
        words[i] = rng.choice(["reportedly", "officials", "Tuesday", "said", "according"])
    text = (" " if spaced else "").join(words)
    return "WASHINGTON (Wire) — " + text + "\n\nThis story was originally published by Wire Service."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    args = parser.parse_args()
    bodies = load_bodies(args.corpus)
    hashes = {page_id: simhash(body) for page_id, body in bodies.items()}
    distinct = sorted(
        hamming(hashes[a], hashes[b])
        for a, b in combinations(sorted(hashes), 2)
        if frozenset({a, b}) not in KNOWN_SAME_STORY
    )
    rng = random.Random(1)
    near = {"light": [], "heavy": []}
    for page_id, body in sorted(bodies.items()):
        near["light"].append(hamming(hashes[page_id], simhash(syndicate(body, rng))))
        near["heavy"].append(hamming(hashes[page_id], simhash(syndicate(body, rng, edits=10, drop_paragraph=True))))
    print(f"articles: {len(bodies)}  distinct pairs: {len(distinct)}")
    print(f"distinct pairs: min {distinct[0]}  1st percentile {distinct[len(distinct) // 100]}  "
          f"median {statistics.median(distinct)}  count <= 10: {sum(d <= 10 for d in distinct)}")
    print(f"  smallest ten: {distinct[:10]}")
    for name, values in near.items():
        values.sort()
        print(f"near copies ({name}): max {values[-1]}  99th percentile {values[int(len(values) * 0.99)]}  "
              f"median {statistics.median(values)}")
    for threshold in range(2, 13):
        caught = {name: sum(v <= threshold for v in values) / len(values) for name, values in near.items()}
        false = sum(d <= threshold for d in distinct)
        print(f"threshold {threshold:2d}: near copies caught light {caught['light']:.3f} heavy {caught['heavy']:.3f}  "
              f"distinct pairs wrongly matched {false}")


if __name__ == "__main__":
    main()
