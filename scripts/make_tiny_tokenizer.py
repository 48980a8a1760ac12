#!/usr/bin/env python3
"""Writes the tokenizers of the shipped tiny models.

configs/models/tiny/tokenizer.json: the character-level vocabulary of the tiny default policy. Ids 0-3
are <pad>, <bos>, <eos>, <unk>; then every printable ASCII character (0x20-0x7E) and '\n'.

configs/models/tiny-pairs/tokenizer.json: the same characters plus one token for every pair of digits
("00".."99"), split greedily left to right, so the two models' token ids for the same text differ and
a swarm of both exercises re-tokenization of external rollouts.

The files are in the Hugging Face `tokenizers` format (WordLevel model), so the same loading code
serves the tiny policies and real checkpoints. Plain Python, no dependencies.
"""
import json
import pathlib

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = [chr(c) for c in range(0x20, 0x7F)] + ["\n"]

ROOT = pathlib.Path(__file__).resolve().parent.parent


def write(model_dir, tokens, pattern):
    vocab = {token: i for i, token in enumerate(SPECIALS + tokens)}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, t in enumerate(SPECIALS)
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
                          "invert": False},
        "post_processor": None,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    }
    out = ROOT / "configs/models" / model_dir / "tokenizer.json"
    out.write_text(json.dumps(tokenizer, indent=1, ensure_ascii=True) + "\n")
    print(f"wrote {out} ({len(vocab)} tokens)")


write("tiny", CHARS, "[\\s\\S]")
write("tiny-pairs", CHARS + [f"{i:02d}" for i in range(100)], "[0-9][0-9]|[\\s\\S]")
