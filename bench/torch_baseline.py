#!/usr/bin/env python3
"""PyTorch baseline for `dseek bench train`: the same config trained in transformers.

DeepseekV3ForCausalLM from a hub config.json (random init, bf16 weights), sdpa attention, the
grouped_mm experts backend (transformers 5), torch.optim.AdamW(fused=True) with the hyper-
parameters of `dseek bench train` (lr 3e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices,
clip 1.0), random tokens, batch 8 x 1024 by default. transformers trains no MTP module (the
baseline's figures are without MTP; compare with `dseek bench train --no-mtp`). Modes: eager and
torch.compile (the model's forward compiled, default mode). Prints one line per mode:
  TORCH_JSON {"mode": ..., "tokens_per_s": ..., "step_ms": ..., "peak_mem_gib": ...}
peak_mem_gib = torch.cuda.max_memory_allocated() over the timed steps (reset per mode).
"""
import argparse
import gc
import json
import sys
import time

import torch


def build(config_path, seed):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(config_path) if not config_path.endswith(".json") else None
    if cfg is None:
        from transformers import DeepseekV3Config

        with open(config_path) as f:
            d = json.load(f)
        cfg = DeepseekV3Config(**{k: v for k, v in d.items() if k not in ("architectures",)})
    torch.manual_seed(seed)
    kw = dict(attn_implementation="sdpa", dtype=torch.bfloat16)
    try:
        model = AutoModelForCausalLM.from_config(cfg, experts_implementation="grouped_mm", **kw)
        experts = "grouped_mm"
    except (TypeError, ValueError) as e:
        print(f"[torch] grouped_mm experts unavailable ({e}); default experts", file=sys.stderr)
        model = AutoModelForCausalLM.from_config(cfg, **kw)
        experts = "default"
    return model.cuda().train(), experts


def run(mode, args):
    model, experts = build(args.config, args.seed)
    V = model.config.vocab_size
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    fwd = torch.compile(model) if mode == "compile" else model
    g = torch.Generator(device="cuda").manual_seed(args.seed)
    data = torch.randint(0, V, (args.batch, args.seq + 1), device="cuda", generator=g)
    inp, tgt = data[:, :-1].contiguous(), data[:, 1:].contiguous()

    def step():
        opt.zero_grad(set_to_none=True)
        logits = fwd(input_ids=inp).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, V), tgt.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    t0 = time.time()
    for i in range(args.warmup):
        l = step()
        print(f"[torch {mode}] warm-up {i} loss {l.item():.4f}", file=sys.stderr, flush=True)
    torch.cuda.synchronize()
    warm_s = time.time() - t0
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    for _ in range(args.steps):
        l = step()
    torch.cuda.synchronize()
    dt = time.time() - t0
    r = {"mode": mode, "experts": experts, "batch": args.batch, "seq": args.seq,
         "steps": args.steps, "step_ms": dt / args.steps * 1e3,
         "tokens_per_s": args.steps * args.batch * args.seq / dt,
         "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
         "warmup_s": warm_s, "last_loss": l.item(),
         "torch": torch.__version__, "gpu": torch.cuda.get_device_name()}
    print("TORCH_JSON " + json.dumps(r), flush=True)
    del model, opt, fwd
    gc.collect()
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="bench/configs/bench-moe-0.7b.config.json")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="eager,compile")
    args = ap.parse_args()
    import transformers

    print(f"[torch] torch {torch.__version__}, transformers {transformers.__version__}",
          file=sys.stderr)
    for mode in args.modes.split(","):
        try:
            run(mode, args)
        except Exception as e:  # report and go on with the next mode
            print(f"TORCH_JSON " + json.dumps({"mode": mode, "error": repr(e)[:300]}), flush=True)


if __name__ == "__main__":
    main()
