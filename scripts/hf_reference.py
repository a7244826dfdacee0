#!/usr/bin/env python3
"""Make a reference file with Hugging Face transformers for a checkpoint dseek wrote.

Runs on the GPU machine (where torch + transformers exist), on its CPU in float64 with eager
attention, and writes the layout of tests/fixtures/README.md: input_ids, logits, loss,
grad.<hub name> for every parameter, generate.prompt / generate.output (greedy, 16 new tokens).
Back on any machine, `dseek check-reference MODEL_DIR REF` then compares dseek against it.

  python3 scripts/hf_reference.py MODEL_DIR OUT.safetensors [--seed 0]

Fails (exit 1) if transformers reports missing weights: a checkpoint must load completely.
"""
import argparse
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    m, info = AutoModelForCausalLM.from_pretrained(
        a.model, dtype=torch.float64, attn_implementation="eager", output_loading_info=True)
    print(f"[hf] {type(m).__name__} transformers {transformers.__version__} "
          f"missing={info['missing_keys']} unexpected={len(info['unexpected_keys'])} "
          f"mismatched={info['mismatched_keys']}")
    if info["missing_keys"] or info["mismatched_keys"]:
        print("[hf] the checkpoint does not load completely", file=sys.stderr)
        return 1
    try:
        m.set_experts_implementation("eager")
    except Exception:
        pass
    m.eval()
    V = m.config.vocab_size
    ids = torch.randint(0, V, (2, 24))
    out = m(input_ids=ids, labels=ids)
    out.loss.backward()
    t = {"input_ids": ids.to(torch.int64), "logits": out.logits.detach().float().contiguous(),
         "loss": out.loss.detach().float().reshape(1)}
    for name, p in m.named_parameters():
        if p.grad is None:
            continue
        g = p.grad.detach().float()
        if name.endswith("mlp.experts.gate_up_proj"):  # transformers 5 fuses experts in memory
            pre = name[: -len("gate_up_proj")]
            inter = g.shape[1] // 2
            for e in range(g.shape[0]):
                t[f"grad.{pre}{e}.gate_proj.weight"] = g[e, :inter].contiguous()
                t[f"grad.{pre}{e}.up_proj.weight"] = g[e, inter:].contiguous()
        elif name.endswith("mlp.experts.down_proj"):
            pre = name[: -len("down_proj")]
            for e in range(g.shape[0]):
                t[f"grad.{pre}{e}.down_proj.weight"] = g[e].contiguous()
        else:
            t[f"grad.{name}"] = g.contiguous()
    prompt = ids[:1, :8].clone()
    with torch.no_grad():
        gen = m.generate(prompt, max_new_tokens=16, min_new_tokens=16, do_sample=False)
    t["generate.prompt"] = prompt.to(torch.int64)
    t["generate.output"] = gen.to(torch.int64)
    meta = {"source": f"transformers {transformers.__version__} torch {torch.__version__}",
            "precision": "float64 on CPU, stored float32", "loss": f"{out.loss.item():.10f}"}
    save_file(t, a.out, metadata=meta)
    print(f"[hf] wrote {a.out}: loss {out.loss.item():.6f}, {len([k for k in t if k.startswith('grad.')])} grads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
