#!/usr/bin/env python3
# PyTorch peer for `zili bench kernels --only attention`: causal scaled_dot_product_attention forward
# + backward (f32) on the same four shapes (B=8 T=256 H=6 D=64; B=1 T=1024; GQA 8:2 and 6:2), best of
# --repeat wall-clock runs in milliseconds. Inputs are contiguous [B, H, T, D] (SDPA's own layout, so
# no transposes are timed on this side); GQA passes enable_gqa=True. The last line is JSON:
# {"threads": ..., "kernels": [{"name": ..., "ms": ...}, ...]}.
#
# Usage: $(scripts/setup-venv) bench/torch_attention.py [--repeat 5] [--threads 2] [--json]
# (bench/attention-vs-torch.sh runs this and zili alternately.)
import argparse
import json
import time

import torch
import torch.nn.functional as F

CASES = [
    ("attention", 8, 256, 6, 6, 64),
    ("attention-1k", 1, 1024, 6, 6, 64),
    ("attention-gqa4", 8, 256, 8, 2, 64),
    ("attention-gqa3", 8, 256, 6, 2, 64),
]


def best_ms(B, T, H, Hkv, D, repeat):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(B, H, T, D, generator=g, requires_grad=True)
    k = torch.randn(B, Hkv, T, D, generator=g, requires_grad=True)
    v = torch.randn(B, Hkv, T, D, generator=g, requires_grad=True)
    dout = torch.randn(B, H, T, D, generator=g)
    kw = {"enable_gqa": True} if Hkv != H else {}
    best = float("inf")
    for _ in range(repeat + 1):  # the first run warms up
        q.grad = k.grad = v.grad = None
        t0 = time.perf_counter()
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, **kw)
        out.backward(dout)
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    only = set(a.only.split(",")) if a.only else None
    res = []
    for name, B, T, H, Hkv, D in CASES:
        if only and name not in only:
            continue
        ms = best_ms(B, T, H, Hkv, D, a.repeat)
        res.append({"name": name, "ms": round(ms, 3)})
        print(f"{name:15s}{ms:10.2f}  causal fwd+bwd B={B} T={T} H={H} Hkv={Hkv} D={D} (torch {torch.__version__} SDPA)")
    if a.json:
        print(json.dumps({"threads": a.threads, "torch": torch.__version__, "kernels": res}))


if __name__ == "__main__":
    main()
