#!/usr/bin/env python3
"""transformers baseline for `dseek bench decode`: greedy generate() on the same config.

DeepseekV2ForCausalLM (or V3, by model_type) from a hub config.json, random init made on the GPU
in bf16, batch 1 by default (--batches 1,8,32,128: a sweep in one process, one model), random
prompts of --prompt tokens, exactly --new greedy tokens (do_sample=False, min_new_tokens =
max_new_tokens), KV cache on (transformers' default). Per batch size one untimed warm-up
generate() of 8 tokens, then --repeats timed calls (the best is reported; the prefill is inside
the timed call, as generate() does it). Prints one line per batch size:
  HF_JSON {"tokens_per_s": ..., "s_per_call": ..., "batch": ..., "torch": ..., "transformers": ...}
tokens_per_s = batch * new / seconds per generate() call.
"""
import argparse
import json
import time

import torch


def build(config_path, seed):
    import transformers
    from transformers import AutoModelForCausalLM

    with open(config_path) as f:
        d = json.load(f)
    cls = transformers.DeepseekV2Config if d.get("model_type") == "deepseek_v2" else transformers.DeepseekV3Config
    cfg = cls(**{k: v for k, v in d.items() if k not in ("architectures",)})
    torch.manual_seed(seed)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--batches", default="", help="comma-separated batch sizes (overrides --batch)")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    try:
        batches = [int(b) for b in a.batches.split(",")] if a.batches else [a.batch]
    except ValueError:
        ap.error(f"--batches wants comma-separated integers, got {a.batches!r}")
    if min(batches) < 1 or a.prompt < 1 or a.new < 1:
        ap.error("batch sizes, --prompt and --new must be positive")
    import transformers

    model = build(a.config, a.seed)
    V = model.config.vocab_size
    g = torch.Generator(device="cuda").manual_seed(a.seed)
    for batch in batches:
        ids = torch.randint(0, V, (batch, a.prompt), device="cuda", generator=g)
        mask = torch.ones_like(ids)
        kw = dict(do_sample=False, pad_token_id=0, attention_mask=mask)
        with torch.no_grad():
            model.generate(ids, max_new_tokens=8, min_new_tokens=8, **kw)
            torch.cuda.synchronize()
            best = None
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                out = model.generate(ids, max_new_tokens=a.new, min_new_tokens=a.new, **kw)
                torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
        n = out.shape[1] - a.prompt
        print("HF_JSON " + json.dumps({"tokens_per_s": batch * n / best, "s_per_call": best,
                                       "new": int(n), "batch": batch, "prompt": a.prompt,
                                       "torch": torch.__version__,
                                       "transformers": transformers.__version__}), flush=True)
        del out
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
