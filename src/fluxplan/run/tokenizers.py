"""Offline tokenizers for synthetic FLUX checkpoints, built with transformers' own tokenizer classes.

No hub download: the vocabularies are generated deterministically so that their size equals the text encoder's
`vocab_size`, and they load back through `T5TokenizerFast` / `CLIPTokenizer(Fast).from_pretrained` and
`FluxPipeline.from_pretrained`. transformers 5 builds both classes on the `tokenizers` library:
- T5: a Unigram model from (piece, score) pairs with a Metaspace pre-tokenizer (the class adds that itself);
- CLIP: a byte-level BPE with end_of_word_suffix "</w>" (also added by the class); we give vocab + merges.
Lowercase ASCII words round-trip through both (CLIP lowercases and splits punctuation as the real one does).
"""

from __future__ import annotations

import itertools
import string

T5_MAX_LENGTH = 512
CLIP_MAX_LENGTH = 77
T5_EXTRA_IDS = 100
_LETTERS = string.ascii_lowercase


def _words(min_len: int = 2):
    """Lowercase letter strings by length, then alphabetically: 'aa', 'ab', ..., 'zz', 'aaa', ..."""
    for n in itertools.count(min_len):
        for letters in itertools.product(_LETTERS, repeat=n):
            yield "".join(letters)


def t5_vocab(vocab_size: int) -> list[tuple[str, float]]:
    """(piece, score) pairs: <pad>, </s>, <unk>, then pieces; the class appends the 100 <extra_id_N> tokens."""
    n_regular = vocab_size - 3 - T5_EXTRA_IDS
    if n_regular < 1 + 2 * len(string.printable.strip()):
        raise ValueError(f"T5 vocab_size {vocab_size} is too small for a usable synthetic tokenizer")
    pieces = ["▁"]
    for ch in string.printable.strip():  # every printable ASCII character, alone and word-initial
        pieces += ["▁" + ch, ch]
    seen = set(pieces)
    words = _words()
    while len(pieces) < n_regular:
        w = next(words)
        for p in ("▁" + w, w):
            if len(pieces) < n_regular and p not in seen:
                pieces.append(p)
                seen.add(p)
    # Longer pieces score higher per piece, so Viterbi prefers whole words over characters.
    scored = [(p, -12.0 + min(len(p), 6)) for p in pieces]
    return [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + scored


def build_t5_tokenizer(vocab_size: int):
    from transformers import T5TokenizerFast

    tok = T5TokenizerFast(vocab=t5_vocab(vocab_size), extra_ids=T5_EXTRA_IDS, model_max_length=T5_MAX_LENGTH)
    if len(tok) != vocab_size:
        raise AssertionError(f"synthetic T5 tokenizer has {len(tok)} tokens, config says {vocab_size}")
    return tok


def _bytes_to_unicode() -> list[str]:
    """GPT-2 / CLIP byte-level alphabet (the mapping tokenizers' ByteLevel pre-tokenizer uses)."""
    from tokenizers.pre_tokenizers import ByteLevel

    return sorted(ByteLevel.alphabet(), key=lambda c: _byte_order(c))


def _byte_order(c: str) -> int:
    # Printable latin-1 bytes map to themselves; the rest map to 256+n. Keep CLIP's order: by the byte they stand for.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    if ord(c) in bs:
        return bs.index(ord(c))
    return len(bs) + ord(c) - 256


def clip_vocab_and_merges(vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's layout: 256 byte symbols, the same with '</w>', the merge results, then <|startoftext|>, <|endoftext|>
    (last, so that the highest id is the end token, as CLIPTextModel's legacy pooling expects)."""
    base = _bytes_to_unicode()
    vocab_list = base + [b + "</w>" for b in base]
    n_merges = vocab_size - len(vocab_list) - 2
    if n_merges < 0:
        raise ValueError(f"CLIP vocab_size {vocab_size} is smaller than the byte-level alphabet")
    merges: list[tuple[str, str]] = []
    words = _words()
    while len(merges) < n_merges:
        w = next(words)
        prefix, last = w[:-1], w[-1]
        for right in (last, last + "</w>"):
            if len(merges) < n_merges:
                merges.append((prefix, right))
                vocab_list.append(prefix + right)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


def build_clip_tokenizer(vocab_size: int):
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges(vocab_size)
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_MAX_LENGTH)
    if len(tok) != vocab_size:
        raise AssertionError(f"synthetic CLIP tokenizer has {len(tok)} tokens, config says {vocab_size}")
    return tok
