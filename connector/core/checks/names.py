"""Names in any script brought to comparable Latin tokens, and how alike two names are.

Normalization: Unicode NFKC; legal forms written in Han script removed (有限公司); the
Arabic article ``ال`` dropped from the words it begins; transliteration to ASCII with
unidecode; case folded; punctuation to spaces; titles and legal forms (``gmbh``, ``co ltd``,
``ooo``) removed as whole words, the longest first. Intake normalizes all the names of a
batch together, each step one C-speed pass over the joined names. Abjad scripts (Arabic,
Hebrew) are written without most vowels, so tokens that came from them are also compared by
their consonant skeleton (vowels dropped, similar sounds merged, doubles collapsed).

Score (0-100) of a query name against a list name, as an explained alignment:

- tokens are paired one to one, best pairs first, by normalized Levenshtein similarity of
  the spelled tokens, of their sound forms (``w``/``v``, ``c``/``k``, ``q``/``k``, ``z``/``s``,
  ``ph``/``f`` merged; scaled by :data:`SOUND_WEIGHT`) and, for abjad tokens, of their
  consonant skeletons (scaled by :data:`SKELETON_WEIGHT`, since the vowels were guessed);
  pairs below the token threshold do not count;
- the base is the length-weighted mean similarity of the pairs;
- when every token of both names is paired the score is the base; when the list name is
  wholly matched and the query has extra words (a middle name, "Trading"), or the query is
  wholly matched with at least two tokens and the list name has extra words (an omitted
  patronymic), the base is scaled by 0.8 + 0.15 x (share of the other side matched), which
  stays below 0.95: a name matched in part is at most a possible match, never denied at the
  default thresholds; otherwise by the smaller of the two shares matched, so a shared first
  name alone never scores high;
- names of different token counts ("Xugou Maoyi" / 虚构贸易 -> "Xu Gou Mao Yi"; 王虚构 ->
  "Wang Xu Gou" / "Wang Xugou") are also compared as one compact string, Chinese being
  written without spaces; the higher score wins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from rapidfuzz.distance import Levenshtein
from unidecode import unidecode

__all__ = [
    "SKELETON_WEIGHT",
    "SOUND_WEIGHT",
    "Alignment",
    "NameForm",
    "NameNormalizer",
    "NameScore",
    "align",
    "compact_key",
    "form_of",
    "score_names",
    "skeleton",
    "sound",
    "to_latin",
    "token_keys",
]

#: How much a match of sound forms counts next to a match of the spelled tokens.
SOUND_WEIGHT = 0.95
#: How much a consonant-skeleton match counts next to a match of the spelled tokens.
SKELETON_WEIGHT = 0.9
#: Shortest compact form compared as a whole (short strings are alike by chance).
_COMPACT_MIN = 6
#: A name matched in part scores at most base + span (< 1): only whole names are denied.
_PARTIAL_BASE = 0.8
_PARTIAL_SPAN = 0.15

_ABJAD = re.compile("[\u0590-\u05ff\u0600-\u06ff\u0750-\u077f\ufb1d-\ufdff\ufe70-\ufeff]")
_HAN = re.compile("[\u3400-\u9fff\uf900-\ufaff]")
_NOT_WORD = re.compile(r"[^0-9a-z]+")
#: The Arabic article at the start of a word of at least two more letters.
_ARTICLE = re.compile(r"(?<!\S)ال(?=\S\S)")
#: Names are joined with U+0000, which cannot occur in XML, and processed as ASCII bytes.
_SEPARATOR = "\x00"
_SEP = b"\x00"
#: Letters and digits stay, everything else becomes a space (the text is ASCII by then).
_WORD_BYTES = bytes(
    c if c in b"0123456789abcdefghijklmnopqrstuvwxyz\x00" else 32 for c in range(256)
)
#: Similar sounds merged: w/v, c/k, q/k, z/s ("ph" -> "f" is done before).
_SOUND_BYTES = bytes.maketrans(b"wcqz", b"vkks")
_VOWEL_BYTES = b"aeiouy"
_DOUBLE = re.compile(rb"([a-z])\1+")


class _Transliteration(dict[int, str]):
    """unidecode, one code point at a time, cached: for ``str.translate`` at C speed.

    unidecode maps each code point on its own (no context), so translating with this table
    gives the same text as calling it on the whole string, several times faster.
    """

    def __missing__(self, code_point: int) -> str:
        char = chr(code_point)
        latin = self[code_point] = char if code_point < 128 else unidecode(char)
        return latin


_LATIN = _Transliteration()


def to_latin(text: str) -> str:
    """``text`` transliterated to ASCII (as unidecode does)."""
    return text if text.isascii() else text.translate(_LATIN)


def _sound_bytes(data: bytes) -> bytes:
    return data.replace(b"ph", b"f").translate(_SOUND_BYTES)


def _skeleton_bytes(sounded: bytes) -> bytes:
    return _DOUBLE.sub(rb"\1", sounded.translate(None, _VOWEL_BYTES))


def sound(token: str) -> str:
    """A Latin token with similar sounds merged (``iwan`` -> ``ivan``, ``testow`` -> ``testov``)."""
    return _sound_bytes(token.encode("ascii", "replace")).decode("ascii")


def skeleton(token: str) -> str:
    """The consonants of a Latin token, similar sounds merged and doubles collapsed
    (``muhammad`` -> ``mhmd``); digits are kept."""
    return _skeleton_bytes(_sound_bytes(token.encode("ascii", "replace"))).decode("ascii")


def _tidy(data: bytes) -> bytes:
    """Single spaces between words, none around the separators or at the ends."""
    return b" ".join(data.split()).replace(b" \x00", _SEP).replace(b"\x00 ", _SEP)


def _trie_pattern(words: Iterable[str]) -> str:
    """A regular expression matching any of ``words``, the longest first, as a trie (much
    faster than a flat alternation of a hundred words)."""
    trie: dict[str, object] = {}
    for word in words:
        node = trie
        for char in word:
            node = cast("dict[str, object]", node.setdefault(char, {}))
        node[""] = {}

    def build(node: dict[str, object]) -> str:
        branches = [
            re.escape(char) + build(cast("dict[str, object]", child))
            for char, child in sorted(node.items())
            if char
        ]
        if not branches:
            return ""
        body = "(?:" + "|".join(branches) + ")"
        return body + "?" if "" in node else body

    return build(trie)


@dataclass(frozen=True, slots=True)
class NameForm:
    """A name ready for comparison."""

    original: str
    tokens: tuple[str, ...]
    sounds: tuple[str, ...]
    skeletons: tuple[str, ...]
    abjad: bool

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    @property
    def compact(self) -> str:
        return "".join(self.tokens)

    def blocking_keys(self) -> tuple[set[str], str]:
        """Blocking keys (see :func:`token_keys` and :func:`compact_key`)."""
        return token_keys(self.tokens, self.skeletons), compact_key(self.tokens, self.skeletons)


def token_keys(tokens: Sequence[str], skeletons: Sequence[str]) -> set[str]:
    """The first three consonants of each token (of the token itself when it has fewer than
    two); one-letter keys (Chinese syllables such as "xu", "gou") would pair nearly
    everything, so they are left out and the compact key stands for them."""
    return {
        key
        for token, skel in zip(tokens, skeletons, strict=True)
        if len(key := (skel if len(skel) >= 2 else token)[:3]) >= 2
    }


def compact_key(tokens: Sequence[str], skeletons: Sequence[str]) -> str:
    """The first three consonants of the whole name."""
    return "".join(skeletons)[:3] or "".join(tokens)[:3]


class NameNormalizer:
    """Brings names to :class:`NameForm` (the removal lists come from configuration)."""

    def __init__(self, legal_forms: Iterable[str] = (), stopwords: Iterable[str] = ()) -> None:
        han: list[str] = []
        sequences: set[str] = set()  # words separated by single spaces
        for word in (*legal_forms, *stopwords):
            if _HAN.search(word):
                han.append(word)
                continue
            tokens = [token for token in _NOT_WORD.split(to_latin(word).casefold()) if token]
            if tokens:
                sequences.add(" ".join(tokens))
        self._han = tuple(sorted(han, key=len, reverse=True))
        # Whole words only; the trie prefers the longest ("co ltd" before "co").
        self._removals = (
            re.compile(
                rb"(?<![^ \x00])" + _trie_pattern(sequences).encode("ascii") + rb"(?![^ \x00])"
            )
            if sequences
            else None
        )

    def normalize(self, name: str) -> NameForm:
        return self.normalize_many([name])[0]

    def normalize_many(self, names: Sequence[str]) -> list[NameForm]:
        """The forms of ``names``, transformed together (see :meth:`parts_many`)."""
        return [
            form_of(name, tokens, sounds, skeletons)
            for name, (tokens, sounds, skeletons) in zip(names, self.parts_many(names), strict=True)
        ]

    def parts_many(self, names: Sequence[str]) -> list[tuple[str, str, str]]:
        """(tokens, sound forms, skeletons) of each name, each as words joined by spaces
        (empty for a name without words).

        Each step is one C-speed pass over all the names joined, so the cost per name stays
        small: intake screens every name of every batch.
        """
        if not names:
            return []
        text = _SEPARATOR.join(name.replace(_SEPARATOR, " ") for name in names)
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
            for han in self._han:
                if han in text:
                    text = text.replace(han, " ")
            if "ال" in text:
                text = _ARTICLE.sub("", text)
            text = to_latin(text)
        full = _tidy(text.casefold().encode("ascii", "replace").translate(_WORD_BYTES))
        kept = _tidy(self._removals.sub(b" ", full)) if self._removals is not None else full
        sounded = _sound_bytes(kept)
        skeletal = _skeleton_bytes(sounded)
        parts: list[tuple[str, str, str]] = []
        for plain, sounds, skeletons in zip(
            kept.decode("ascii").split(_SEPARATOR),
            sounded.decode("ascii").split(_SEPARATOR),
            skeletal.decode("ascii").split(_SEPARATOR),
            strict=True,
        ):
            if not plain:  # nothing but legal forms or titles: keep them all
                original = full.split(_SEP)[len(parts)]
                plain = original.decode("ascii")
                sounds = _sound_bytes(original).decode("ascii")
                skeletons = _skeleton_bytes(_sound_bytes(original)).decode("ascii")
            parts.append((plain, sounds, skeletons))
        return parts


def form_of(name: str, tokens: str, sounds: str, skeletons: str) -> NameForm:
    """The :class:`NameForm` of ``name`` from its parts (see ``parts_many``)."""
    abjad = not name.isascii() and _ABJAD.search(name) is not None
    if not tokens:
        return NameForm(name, (), (), (), abjad)
    return NameForm(
        name,
        tuple(tokens.split(" ")),
        tuple(sounds.split(" ")),
        tuple(skeletons.split(" ")),
        abjad,
    )


@dataclass(frozen=True, slots=True)
class NameScore:
    """How alike two names are, and why."""

    score: float
    method: str  # "tokens" or "compact"
    pairs: tuple[tuple[str, str, float], ...]  # (query token, list token, similarity)


def _similarity(query: NameForm, entry: NameForm, i: int, j: int) -> float:
    q, e = query.tokens[i], entry.tokens[j]
    if q == e:
        return 100.0
    best = Levenshtein.normalized_similarity(q, e) * 100
    qs, es = query.sounds[i], entry.sounds[j]
    if qs != q or es != e:
        best = max(best, Levenshtein.normalized_similarity(qs, es) * 100 * SOUND_WEIGHT)
    if query.abjad or entry.abjad:
        qk, ek = query.skeletons[i], entry.skeletons[j]
        if len(qk) >= 2 and len(ek) >= 2:
            best = max(best, Levenshtein.normalized_similarity(qk, ek) * 100 * SKELETON_WEIGHT)
    return best


@dataclass(frozen=True, slots=True)
class Alignment:
    """Tokens of two names paired one to one, best pairs first."""

    pairs: tuple[tuple[str, str, float], ...]  # (query token, list token, similarity)
    base: float  # length-weighted mean similarity of the pairs (0 without pairs)
    query_share: float  # share of the query's tokens paired
    entry_share: float  # share of the list name's tokens paired


def align(query: NameForm, entry: NameForm, token_threshold: float) -> Alignment:
    """Pair the tokens of ``query`` and ``entry`` whose similarity reaches the threshold."""
    q_tokens, e_tokens = query.tokens, entry.tokens
    if not q_tokens or not e_tokens:
        return Alignment((), 0.0, 0.0, 0.0)
    candidates = sorted(
        (
            (similarity, i, j)
            for i in range(len(q_tokens))
            for j in range(len(e_tokens))
            if (similarity := _similarity(query, entry, i, j)) >= token_threshold
        ),
        reverse=True,
    )
    used_q: set[int] = set()
    used_e: set[int] = set()
    pairs: list[tuple[str, str, float]] = []
    weighted = weights = 0.0
    for similarity, i, j in candidates:
        if i in used_q or j in used_e:
            continue
        used_q.add(i)
        used_e.add(j)
        pairs.append((q_tokens[i], e_tokens[j], round(similarity, 1)))
        weight = len(q_tokens[i]) + len(e_tokens[j])
        weighted += similarity * weight
        weights += weight
    if not pairs:
        return Alignment((), 0.0, 0.0, 0.0)
    return Alignment(
        tuple(pairs), weighted / weights, len(pairs) / len(q_tokens), len(pairs) / len(e_tokens)
    )


def score_names(query: NameForm, entry: NameForm, token_threshold: float) -> NameScore:
    """Score ``query`` against the list name ``entry`` (see the module docstring)."""
    aligned = align(query, entry, token_threshold)
    token_score = 0.0
    if aligned.pairs:
        share_q, share_e = aligned.query_share, aligned.entry_share
        if share_q == 1 and share_e == 1:
            factor = 1.0
        elif share_e == 1:
            factor = _PARTIAL_BASE + _PARTIAL_SPAN * share_q
        elif share_q == 1 and len(aligned.pairs) >= 2:
            factor = _PARTIAL_BASE + _PARTIAL_SPAN * share_e
        else:
            factor = min(share_q, share_e)
        token_score = round(aligned.base * factor, 1)
    compact_score = 0.0
    q_compact, e_compact = query.compact, entry.compact
    different_counts = len(query.tokens) != len(entry.tokens)
    if different_counts and min(len(q_compact), len(e_compact)) >= _COMPACT_MIN:
        compact_score = round(Levenshtein.normalized_similarity(q_compact, e_compact) * 100, 1)
    if compact_score > token_score:
        return NameScore(compact_score, "compact", ((q_compact, e_compact, compact_score),))
    return NameScore(token_score, "tokens", aligned.pairs)
