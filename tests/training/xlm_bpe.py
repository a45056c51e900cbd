"""XLM's text pipeline as the tests' reference, written from fastBPE's and XLM's documented
behaviour (no code of theirs): learn BPE codes on a corpus (fastBPE learnbpe), apply them with
a vocabulary (fastBPE applybpe), build XLM's dictionary and index a line (XLM Dictionary).

The C++ tokenizer (model_loader/tokenizer_xlm.cc) is judged against apply_bpe + index.
"""
import re
from collections import Counter
from typing import Dict, List, Sequence, Tuple

END = "</w>"
SPECIALS = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)]
UNK = 3


def words_of(text: str) -> List[str]:
    """Words at ASCII whitespace (str.split() would also split at Unicode spaces)."""
    return [w for w in re.split(r"[ \t\n\r\v\f]+", text) if w]


def learn_bpe(corpus: str, merges: int) -> List[Tuple[str, str, int]]:
    """The `merges` most frequent pairs, one at a time (ties: the lexicographically largest pair,
    a fixed choice; fastBPE's own tie order does not matter to the tests), with their counts."""
    vocab = Counter(tuple(w[:-1]) + (w[-1] + END,) for w in words_of(corpus))
    codes = []
    for _ in range(merges):
        pairs = Counter()
        for word, n in vocab.items():
            for a, b in zip(word, word[1:]):
                pairs[a, b] += n
        if not pairs:
            break
        (a, b), n = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        codes.append((a, b, n))
        merged = Counter()
        for word, count in vocab.items():
            merged[tuple(merge_all(list(word), a, b))] += count
        vocab = merged
    return codes


def merge_all(word: List[str], a: str, b: str) -> List[str]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


class Bpe:
    def __init__(self, codes: Sequence[Tuple[str, str, int]], vocab=None):
        """vocab None: pieces are kept as merged (applybpe without a vocabulary)."""
        self.rank: Dict[Tuple[str, str], int] = {}
        self.parts: Dict[str, Tuple[str, str]] = {}
        for i, (a, b, _) in enumerate(codes):
            if (a, b) not in self.rank:
                self.rank[a, b] = i
                self.parts[a + b] = (a, b)
        self.vocab = None if vocab is None else set(vocab)

    @staticmethod
    def spelled(piece: str, last: bool) -> str:
        return piece[:-len(END)] if last and piece.endswith(END) else piece if last else piece + "@@"

    def word(self, w: str) -> List[str]:
        pieces = list(w[:-1]) + [w[-1] + END]
        while len(pieces) > 1:
            ranked = [(self.rank[p], p) for p in zip(pieces, pieces[1:]) if p in self.rank]
            if not ranked:
                break
            a, b = min(ranked)[1]
            pieces = merge_all(pieces, a, b)
        out = []
        for i, p in enumerate(pieces):
            self._limit(p, i == len(pieces) - 1, out)
        return out

    def _limit(self, piece: str, last: bool, out: List[str]):
        """applybpe's vocabulary check: a piece outside the vocabulary is split into its parts."""
        if self.vocab is None or self.spelled(piece, last) in self.vocab or piece not in self.parts:
            out.append(self.spelled(piece, last))
            return
        a, b = self.parts[piece]
        self._limit(a, False, out)
        self._limit(b, last, out)

    def apply(self, text: str) -> List[str]:
        return [p for w in words_of(text) for p in self.word(w)]


def dictionary(tokens: Sequence[str], size: int) -> List[str]:
    """XLM's order: the specials, then words by falling count (ties by word), cut at `size`."""
    counts = Counter(tokens)
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return SPECIALS + words[:size - len(SPECIALS)]


def index(words: Sequence[str], pieces: Sequence[str]) -> List[int]:
    ids = {w: i for i, w in enumerate(words)}
    return [ids.get(p, UNK) for p in pieces]


def detokenize(words: Sequence[str], ids: Sequence[int]) -> str:
    """XLM's `" ".join(words).replace("@@ ", "")`, silent specials dropped, a final "@@" too."""
    kept = [words[i] for i in ids if words[i] not in SPECIALS or words[i] == "<unk>"]
    text = " ".join(kept).replace("@@ ", "")
    return text[:-2] if text.endswith("@@") else text


def build(corpus: str, merges: int, size: int):
    """(codes, dictionary words) learned on `corpus`: what an XLM model ships."""
    codes = learn_bpe(corpus, merges)
    plain = Bpe(codes)  # XLM applies the codes to the training data before counting
    return codes, dictionary(plain.apply(corpus), size)


def codes_text(codes) -> str:
    return "".join(f"{a} {b} {n}\n" for a, b, n in codes)
