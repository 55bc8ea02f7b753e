"""Token-level F1 of an extracted body against a ground-truth body.

Tokens are lower-cased words (``\\w+``); CJK characters count one token each,
since those scripts do not separate words with spaces. F1 compares the two
bags of tokens (multiset overlap), so paragraph order and whitespace do not
matter, but every missing or extra word does.
"""

from __future__ import annotations

import re
from collections import Counter

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|\w+")


def tokens(text: str | None) -> Counter[str]:
    return Counter(_TOKEN.findall((text or "").lower()))


def token_f1(predicted: str | None, truth: str | None) -> float:
    pred, gold = tokens(predicted), tokens(truth)
    if not pred and not gold:
        return 1.0
    overlap = sum((pred & gold).values())
    if not overlap:
        return 0.0
    precision = overlap / sum(pred.values())
    recall = overlap / sum(gold.values())
    return 2 * precision * recall / (precision + recall)
