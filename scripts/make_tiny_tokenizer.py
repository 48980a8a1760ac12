#!/usr/bin/env python3
"""Writes configs/models/tiny/tokenizer.json: the character-level vocabulary of the tiny default policy.

Ids 0-3 are <pad>, <bos>, <eos>, <unk>; then every printable ASCII character (0x20-0x7E) and '\n'.
The file is in the Hugging Face `tokenizers` format (WordLevel model, one token per character), so the
same loading code serves the tiny policy and real checkpoints. Plain Python, no dependencies.
"""
import json
import pathlib

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = [chr(c) for c in range(0x20, 0x7F)] + ["\n"]

vocab = {token: i for i, token in enumerate(SPECIALS + CHARS)}
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
    "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated",
                      "invert": False},
    "post_processor": None,
    "decoder": {"type": "Fuse"},
    "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
}
out = pathlib.Path(__file__).resolve().parent.parent / "configs/models/tiny/tokenizer.json"
out.write_text(json.dumps(tokenizer, indent=1, ensure_ascii=True) + "\n")
print(f"wrote {out} ({len(vocab)} tokens)")
