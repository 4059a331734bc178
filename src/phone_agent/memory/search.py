"""Search helpers shared by the backends: query terms and reciprocal-rank fusion.

Hybrid retrieval runs a lexical search (FTS5 / tsvector) and, when embeddings are on, a vector
search (sqlite-vec / pgvector), then fuses the two rankings with RRF (Cormack et al. 2009):
``score = sum(1 / (k + rank))``. Rank fusion needs no score calibration between BM25 and cosine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

RRF_K = 60
MAX_TERMS = 16
STOPWORDS = frozenset(
    """a about am an and any are as at be been but by can could did do does for from had has have hi
    hello how i i'd i'm if in into is it it's its just like me my no not of on or our please so that
    the their them then there these they this to too um uh us was we were what when where which who
    why will with would yes you your""".split()
)


def query_terms(text: str) -> list[str]:
    """Lower-case word terms of a query, stopwords dropped, first ``MAX_TERMS`` distinct ones.

    Terms are ``[a-z0-9]`` only, so they are safe to splice into an FTS5 or tsquery expression.
    """
    seen: list[str] = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word not in STOPWORDS and word not in seen and (len(word) > 1 or word.isdigit()):
            seen.append(word)
    return seen[:MAX_TERMS]


def fuse_rankings(rankings: Sequence[Sequence[int]], *, k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of id rankings (best first) → ``[(id, score)]`` best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item_id in enumerate(ranking):
            scores[item_id] = scores.get(item_id, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def normalise_fact(text: str) -> str:
    """A fact's identity for de-duplication: lower case, words only."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))
