"""The reference side of `swarm-node bench sample|train`: the same model shape run by PyTorch eager
through Hugging Face transformers, with the same batch shapes and the same token counting, printing
one JSON line per measurement.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers safetensors numpy
    /tmp/venv/bin/python scripts/bench_torch.py --model configs/models/bench-25m --threads 2

Sampling: `generate` with the KV cache, temperature 1, no top-k/top-p, every sequence producing
exactly --new-tokens tokens (as the Rust bench ignores end-of-sequence). Training: forward over
prompt + completion, per-token log-probs of the completion, backward, global-norm clipping to 1.0,
AdamW step. Tokens per second counts generated tokens for sampling and every token of the batch for
training, like the Rust bench. `--peak` also times a large float32 matrix multiply, a practical
ceiling for the machine's arithmetic rate.
"""

import argparse
import json
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


def forward_flops_per_token(config: Qwen2Config, context: int) -> float:
    head_dim = config.hidden_size // config.num_attention_heads
    q = config.num_attention_heads * head_dim
    kv = config.num_key_value_heads * head_dim
    h = config.hidden_size
    projections = h * q + 2 * h * kv + q * h + 3 * h * config.intermediate_size
    attention = 2 * q * context
    layers = config.num_hidden_layers * (projections + attention)
    return 2.0 * (layers + h * config.vocab_size)


def report(kind, model, args, seconds, tokens):
    per_iteration = seconds / args.iterations
    context = (args.prompt_tokens + args.new_tokens) // 2
    passes = 3.0 if kind == "train" else 1.0
    flops = passes * forward_flops_per_token(model.config, context) * tokens / per_iteration
    return {
        "engine": f"torch {torch.__version__} eager",
        "kind": kind,
        "batch": args.batch,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "iterations": args.iterations,
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds_per_iteration": per_iteration,
        "tokens_per_second": tokens / per_iteration,
        "gflop_per_second": flops / 1e9,
    }


def bench_sample(model, args):
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(4, model.config.vocab_size, (args.batch, args.prompt_tokens), generator=generator)
    mask = torch.ones_like(prompt)

    def run():
        with torch.no_grad():
            out = model.generate(
                input_ids=prompt,
                attention_mask=mask,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                use_cache=True,
                pad_token_id=0,
            )
        return (out.shape[1] - args.prompt_tokens) * args.batch

    run()
    start = time.perf_counter()
    tokens = sum(run() for _ in range(args.iterations))
    return report("sample", model, args, time.perf_counter() - start, tokens // args.iterations)


def bench_train(model, args):
    generator = torch.Generator().manual_seed(0)
    length = args.prompt_tokens + args.new_tokens
    ids = torch.randint(4, model.config.vocab_size, (args.batch, length), generator=generator)
    mask = torch.zeros(args.batch, length - 1)
    mask[:, args.prompt_tokens - 1 :] = 1.0
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()

    def step():
        logits = model(input_ids=ids).logits[:, :-1]
        logprobs = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        loss = -(logprobs * mask).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(args.iterations):
        step()
    return report("train", model, args, time.perf_counter() - start, args.batch * length)


def gemm_peak(size=2048, iterations=10):
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(iterations):
        torch.matmul(a, b)
    seconds = (time.perf_counter() - start) / iterations
    return {"kind": "gemm", "size": size, "threads": torch.get_num_threads(), "gflop_per_second": 2 * size**3 / seconds / 1e9}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory with config.json")
    parser.add_argument("--what", choices=["sample", "train", "both"], default="both")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--peak", action="store_true", help="also time a 2048^3 float32 matmul")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = Qwen2Config.from_pretrained(args.model)
    model = Qwen2ForCausalLM(config).float()
    model.eval()
    if args.what in ("sample", "both"):
        print(json.dumps(bench_sample(model, args)), flush=True)
    if args.what in ("train", "both"):
        print(json.dumps(bench_train(model, args)), flush=True)
    if args.peak:
        print(json.dumps(gemm_peak()), flush=True)


if __name__ == "__main__":
    main()
