"""How search reads text: folding (case and accents), words, and the typo budget of a word.

Both sides use it: documents' words go into the vocabulary folded this way, queries are folded the same
way, so "Crème" and "creme" meet. Only [a-z0-9] survives into a word, so query operators and special
characters (& | ! : * ( ) " \\) never reach a tsquery or an Elasticsearch query string.
"""
from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[a-z0-9]+")
_SKU = re.compile(r"^[a-z0-9][a-z0-9._/-]{1,63}$")


def fold(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def words(value: str) -> list[str]:
    return _WORD.findall(fold(value))


def sku_candidate(value: str) -> str | None:
    """The whole query as an SKU ('nc-0001-1'), if it has an SKU's shape."""
    folded = fold(value).strip()
    return folded if _SKU.match(folded) and any(c.isdigit() for c in folded) else None


def singular(word: str) -> str:
    """A plural's likely singular ("ovens" -> "oven", "batteries" -> "battery"): a plural of a known word is
    not a typo (the english stemmer matches it), so it is not corrected either."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def typo_budget(word: str) -> int:
    """Edits a word may carry and still match: none below 4 characters, one from 4, two from 8 (close to
    Elasticsearch's `fuzziness: AUTO:4,8`)."""
    if len(word) >= 8:
        return 2
    return 1 if len(word) >= 4 else 0


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions
    each count one (a swapped pair of letters is one typo, as in Elasticsearch's fuzzy queries)."""
    if a == b:
        return 0
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]
