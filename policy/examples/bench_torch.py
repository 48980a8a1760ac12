#!/usr/bin/env python3
"""The PyTorch-eager reference for `policy/examples/bench.rs`: the same model directory, shapes and
work through Hugging Face transformers, printed as the same JSON lines.

    python policy/examples/bench_torch.py configs/models/tiny [batch] [prompt] [new] [iterations]

Sampling: batch prompts of `prompt` tokens, exactly `new` sampled tokens each (temperature 1, no
top-k/top-p, end-of-sequence ignored), KV cache on; tokens/s counts generated tokens. Training: one
step of forward, backward, global-norm clipping and AdamW on batch x (prompt + new) tokens, loss on the
completion tokens; tokens/s counts all tokens of the batch. Threads: torch.set_num_threads uses
RAYON_NUM_THREADS when set (as candle does), else all cores. Weights are random (throughput does not
depend on them).
"""
import json
import os
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main() -> None:
    args = sys.argv[1:]
    model_dir = args[0] if args else "configs/models/tiny"
    batch, prompt, new, iterations = (int(a) for a in (args[1:] + ["8", "32", "64", "3"][len(args[1:]):]))
    threads = int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    parameters = sum(p.numel() for p in model.parameters())
    ids = torch.randint(4, config.vocab_size, (batch, prompt))
    attention = torch.ones_like(ids)

    model.eval()

    def sample() -> None:
        with torch.no_grad():
            model.generate(
                input_ids=ids, attention_mask=attention, do_sample=True, temperature=1.0, top_k=0,
                top_p=1.0, max_new_tokens=new, min_new_tokens=new, pad_token_id=0,
            )

    def timed(run) -> float:
        run()
        start = time.perf_counter()
        for _ in range(iterations):
            run()
        return (time.perf_counter() - start) / iterations

    seconds = timed(sample)
    report = dict(kind="sample", batch=batch, prompt_tokens=prompt, new_tokens=new,
                  iterations=iterations, threads=threads, parameters=parameters,
                  seconds_per_iteration=seconds, tokens_per_second=batch * new / seconds,
                  implementation=f"torch {torch.__version__} eager, transformers")
    print(json.dumps(report))

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.99), weight_decay=0.0)
    sequence = torch.randint(4, config.vocab_size, (batch, prompt + new))
    labels = sequence.clone()
    labels[:, :prompt] = -100

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=sequence, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    seconds = timed(step)
    report.update(kind="train", seconds_per_iteration=seconds,
                  tokens_per_second=batch * (prompt + new) / seconds)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
