"""GGUF vocabulary -> Hugging Face `tokenizer.json` that tokenizes like llama.cpp.

Two vocabulary kinds (`tokenizer.ggml.model`):

* `gpt2` — byte-level BPE with the file's merges. The pre-tokenizer (how text is split into
  words before BPE) is not in the file, only its name (`tokenizer.ggml.pre`), so the regular
  expressions are llama.cpp's for that name (llama-vocab.cpp); an unknown name is an error
  rather than a silently different split.
* `llama` — SentencePiece (Llama 2, Mistral v0.1, Gemma, Phi-3). llama.cpp merges the
  adjacent pair of pieces whose concatenation is in the vocabulary with the highest score,
  leftmost first, and falls back to `<0xXX>` byte tokens for characters with no piece. A BPE
  model gives the same result when its merges are every split of every piece into two
  pieces, ranked by the merged piece's score (the same derivation transformers' GGUF
  converter uses). Spaces become U+2581; `tokenizer.ggml.add_space_prefix` prepends one to
  each run of text, as llama.cpp does after every special token.

local-runtime/tests/tokenizer_parity.rs checks both kinds against llama.cpp's own
tokenization of the same GGUF (fixtures: scripts/convert/tokenizer_fixtures.py).
"""

from __future__ import annotations

# llama.cpp's token types (llama_token_type / gguf TokenType)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

_CONTRACTIONS_CI = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# llama.cpp's LLAMA_VOCAB_PRE_TYPE_LLAMA3 and _QWEN2 expressions (they differ in digit runs)
_LLAMA3 = (
    _CONTRACTIONS_CI
    + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    _CONTRACTIONS_CI + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _split(pattern: str) -> dict:
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


_BYTE_LEVEL_NO_REGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}

# tokenizer.ggml.pre -> (pre-tokenizer, ignore_merges). ignore_merges: a word that is itself
# in the vocabulary is one token without running BPE (llama.cpp: tokenizer_ignore_merges).
BPE_PRE = {
    "default": ({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}, False),
    "gpt-2": ({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}, False),
    # SmolLM: every digit alone, then GPT-2's expression
    "smollm": (
        {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            ],
        },
        False,
    ),
    "llama-bpe": ({"type": "Sequence", "pretokenizers": [_split(_LLAMA3), _BYTE_LEVEL_NO_REGEX]}, True),
    "qwen2": ({"type": "Sequence", "pretokenizers": [_split(_QWEN2), _BYTE_LEVEL_NO_REGEX]}, False),
    "deepseek-r1-qwen": ({"type": "Sequence", "pretokenizers": [_split(_QWEN2), _BYTE_LEVEL_NO_REGEX]}, False),
}


class TokenizerError(Exception):
    """A vocabulary this converter cannot rebuild faithfully; the message says why."""


def _added_tokens(tok) -> list:
    """Control and user-defined tokens are matched in the text before the model runs, as
    llama.cpp's special-token pass does (user-defined ones even in plain text)."""
    out = []
    for i, (t, ty) in enumerate(zip(tok["tokens"], tok["types"])):
        if ty in (CONTROL, USER_DEFINED) and t:
            out.append(
                {
                    "id": i,
                    "content": t,
                    "single_word": False,
                    "lstrip": False,
                    "rstrip": False,
                    "normalized": False,
                    "special": ty == CONTROL,
                }
            )
    return out


def _bpe_model(vocab: dict, merges: list, byte_fallback: bool, ignore_merges: bool, unk) -> dict:
    return {
        "type": "BPE",
        "dropout": None,
        "unk_token": unk,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": byte_fallback,
        "byte_fallback": byte_fallback,
        "ignore_merges": ignore_merges,
        "vocab": vocab,
        "merges": merges,
    }


def _gpt2(tok) -> dict:
    pre_name = tok.get("pre") or "default"
    if pre_name not in BPE_PRE:
        raise TokenizerError(
            f"unsupported BPE pre-tokenizer {pre_name!r} (tokenizer.ggml.pre); supported: {', '.join(sorted(BPE_PRE))}"
        )
    pre, ignore_merges = BPE_PRE[pre_name]
    vocab = {t: i for i, t in enumerate(tok["tokens"])}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added_tokens(tok),
        "normalizer": None,
        "pre_tokenizer": pre,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": _bpe_model(vocab, list(tok["merges"]), False, ignore_merges, None),
    }


def spm_merges(tokens: list, scores: list, types: list) -> list:
    """Every split of every mergeable piece into two pieces of the vocabulary, best merged
    score first (ties: the piece that comes first in the vocabulary, then the shorter left
    part), as `"left right"` strings."""
    index = {}
    for i, t in enumerate(tokens):
        if types[i] in (NORMAL, USER_DEFINED, UNUSED) and t not in index:
            index[t] = i
    ranked = []
    for t, i in index.items():
        for cut in range(1, len(t)):
            left, right = t[:cut], t[cut:]
            if left in index and right in index:
                ranked.append((-scores[i], i, cut, left, right))
    ranked.sort()
    return [[left, right] for _, _, _, left, right in ranked]


def _spm(tok) -> dict:
    tokens, types = tok["tokens"], tok["types"]
    scores = tok.get("scores") or []
    if len(scores) != len(tokens) or len(types) != len(tokens):
        raise TokenizerError("SentencePiece vocabulary without a score and a type for every token")
    if not any(ty == BYTE for ty in types):
        raise TokenizerError("SentencePiece vocabulary without <0xXX> byte tokens (byte fallback) is not supported")
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    unk_id = tok.get("unk")
    unk = tokens[unk_id] if unk_id is not None and 0 <= unk_id < len(tokens) else None
    normalizers = []
    if tok.get("add_space_prefix", True):
        normalizers.append({"type": "Prepend", "prepend": "\u2581"})
    normalizers.append({"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added_tokens(tok),
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": None,
        "post_processor": None,
        # No Strip of the leading space: streaming decodes overlapping windows, and a
        # stripped space at a window's start would drop a real space mid-answer.
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
            ],
        },
        "model": _bpe_model(vocab, spm_merges(tokens, scores, types), True, False, unk),
    }


def build_tokenizer_json(tok) -> dict:
    kind = tok.get("model")
    if kind == "gpt2":
        return _gpt2(tok)
    if kind == "llama":
        return _spm(tok)
    raise TokenizerError(
        f"unsupported tokenizer model {kind!r} (tokenizer.ggml.model); supported: gpt2 (byte-level BPE), llama (SentencePiece)"
    )
