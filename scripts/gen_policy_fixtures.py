#!/usr/bin/env python3
"""Builds the reference fixtures of the policy parity test (policy/tests/hf_parity.rs).

Two small random checkpoints are built with Hugging Face `transformers` and saved with
`save_pretrained`, exactly as a user's model directory would look:

  qwen2/  Qwen2ForCausalLM: grouped-query attention (4 query / 2 key-value heads), q/k/v biases,
          tied embeddings, rope theta 10000, weights stored in bfloat16 in one safetensors file.
  llama/  LlamaForCausalLM: untied output head, rope theta 500000, an explicit head_dim (16) that
          differs from hidden_size / heads, weights stored in float16 across several shards with a
          `model.safetensors.index.json`.

Weights are drawn with a large spread (and norms and biases away from their defaults) so that every
parameter visibly moves the logits. The reference logits come from reloading the saved directory with
`from_pretrained(..., dtype=float32)`, so the Rust side, which converts the stored weights to float32,
must match to float rounding. `reference.safetensors` holds, per input sequence i, `input_ids.i` (int64) and the
eager-attention float32 logits `logits.i` of shape (len, vocab). The tiny policy's character
tokenizer is copied in so each directory is a complete model directory.

Usage (CPU is enough; about a minute after installing):
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers safetensors numpy
    /tmp/venv/bin/python scripts/gen_policy_fixtures.py
"""
import pathlib
import shutil

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "policy/tests/fixtures"
TOKENIZER = ROOT / "configs/models/tiny/tokenizer.json"

COMMON = dict(
    vocab_size=100,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

# Lengths differ so the Rust test exercises padding; ids avoid the special tokens 0-3.
LENGTHS = [7, 12, 3]


def randomize(model: torch.nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.3 * noise)
            elif name.endswith(".bias"):
                param.copy_(0.5 * noise)
            else:
                param.copy_(0.3 * noise)


def build(name: str, model: torch.nn.Module, dtype: torch.dtype, shard: str | None, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    randomize(model, generator)
    out = OUT / name
    if out.exists():
        shutil.rmtree(out)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.to(dtype).save_pretrained(out, safe_serialization=True, **kwargs)
    shutil.copy(TOKENIZER, out / "tokenizer.json")
    # The reference is what transformers computes from the files on disk, loaded in float32 (loading
    # afresh also keeps the rotary frequencies in float32: converting a live model to bf16 would
    # round them too).
    reloaded = type(model).from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
    reloaded.eval()
    inputs = [torch.randint(4, COMMON["vocab_size"], (n,), generator=generator) for n in LENGTHS]
    reference = {}
    with torch.no_grad():
        for i, ids in enumerate(inputs):
            logits = reloaded(input_ids=ids.unsqueeze(0)).logits[0]
            reference[f"input_ids.{i}"] = ids.to(torch.int64).contiguous()
            reference[f"logits.{i}"] = logits.to(torch.float32).contiguous()
    save_file(reference, str(out / "reference.safetensors"))
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({size} bytes): {sorted(p.name for p in out.iterdir())}")


def main() -> None:
    torch.manual_seed(0)
    qwen = Qwen2ForCausalLM(
        Qwen2Config(**COMMON, rope_theta=10000.0, tie_word_embeddings=True, use_sliding_window=False)
    )
    build("qwen2", qwen, torch.bfloat16, None, seed=1)
    llama = LlamaForCausalLM(
        LlamaConfig(**COMMON, rope_theta=500000.0, tie_word_embeddings=False, head_dim=16)
    )
    build("llama", llama, torch.float16, "40KB", seed=2)


if __name__ == "__main__":
    main()
