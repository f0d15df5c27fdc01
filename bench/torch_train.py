#!/usr/bin/env python3
# PyTorch eager baseline for `zili bench train`: the same LLaMA-family model (RMSNorm, RoPE
# rotate-half, grouped-query causal attention, SwiGLU, untied output) trained on random token
# batches with AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.1 except norms, global-norm clipping
# at 1.0), the optimizer settings of zili's defaultAdamW. Same flags as `bin/zili bench train`;
# the last line is JSON: {"tokensPerSec": ..., "stepTimeS": ...} from the median timed step after
# warm-up steps. --dtype bf16 runs the model under CPU autocast (bf16 GEMMs, f32 master weights).
# Attention is F.scaled_dot_product_attention (causal) on torch 2, the explicit softmax on torch 1.
#
# Usage: $(scripts/setup-venv) bench/torch_train.py --layers 6 --d-model 384 --heads 6 --kv-heads 6 \
#          --ffn-hidden 1024 --vocab 4096 --seq 256 --batch 8 --steps 5 --json
# (torch 2 CPU wheel from scripts/setup-venv; bench/compare-torch.sh runs this and zili side by side.)
import argparse
import contextlib
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):
    """x [B, T, H, D]: pairs (i, i + D/2) rotated by position * theta^(-2i/D)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(nn.Module):
    def __init__(self, d, heads, kv_heads):
        super().__init__()
        self.h, self.kv, self.hd = heads, kv_heads, d // heads
        self.wq = nn.Linear(d, heads * self.hd, bias=False)
        self.wk = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.wv = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.wo = nn.Linear(heads * self.hd, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = rope(self.wq(x).view(B, T, self.h, self.hd), cos, sin)
        k = rope(self.wk(x).view(B, T, self.kv, self.hd), cos, sin)
        v = self.wv(x).view(B, T, self.kv, self.hd)
        g = self.h // self.kv
        if g > 1:  # query head h reads kv head h // g
            k, v = k.repeat_interleave(g, dim=2), v.repeat_interleave(g, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
        if hasattr(F, 'scaled_dot_product_attention'):  # torch 2: fused (flash) attention
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.hd))
            p = torch.softmax(s.masked_fill(mask, float('-inf')), dim=-1)
            o = p @ v
        o = o.transpose(1, 2).reshape(B, T, self.h * self.hd)
        return self.wo(o)


class SwiGLU(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.w1 = nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)
        self.w3 = nn.Linear(d, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.attention_norm = RMSNorm(a.d_model, a.norm_eps)
        self.attention = Attention(a.d_model, a.heads, a.kv_heads)
        self.ffn_norm = RMSNorm(a.d_model, a.norm_eps)
        self.feed_forward = SwiGLU(a.d_model, a.ffn_hidden)

    def forward(self, x, cos, sin, mask):
        h = x + self.attention(self.attention_norm(x), cos, sin, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.tok_embeddings = nn.Embedding(a.vocab, a.d_model)
        self.layers = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.d_model, a.norm_eps)
        self.output = nn.Linear(a.d_model, a.vocab, bias=False)
        # zili's init: normal(0.02), output projections of each block 0.02 / sqrt(2 * layers)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * a.layers) if name.endswith(('wo.weight', 'w2.weight')) else 0.02
                nn.init.normal_(p, std=std)
        hd = a.d_model // a.heads
        ang = torch.arange(a.seq, dtype=torch.float64)[:, None] * a.rope_theta ** (-2.0 * torch.arange(hd // 2, dtype=torch.float64) / hd)
        self.register_buffer('cos', torch.cos(ang).float()[None, :, None, :], persistent=False)
        self.register_buffer('sin', torch.sin(ang).float()[None, :, None, :], persistent=False)
        self.register_buffer('mask', torch.ones(a.seq, a.seq, dtype=torch.bool).triu(1), persistent=False)

    def forward(self, ids, targets):
        T = ids.shape[1]
        cos, sin, mask = self.cos[:, :T], self.sin[:, :T], self.mask[:T, :T]
        x = self.tok_embeddings(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        logits = self.output(self.norm(x))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-1)


def parse():
    p = argparse.ArgumentParser(description='PyTorch eager training throughput (the baseline of zili bench train)')
    p.add_argument('--layers', type=int, default=6)
    p.add_argument('--d-model', type=int, default=384)
    p.add_argument('--heads', type=int, default=6)
    p.add_argument('--kv-heads', type=int, default=None, help='default: --heads')
    p.add_argument('--ffn-hidden', type=int, default=1024)
    p.add_argument('--vocab', type=int, default=4096)
    p.add_argument('--seq', type=int, default=256)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--steps', type=int, default=5, help='timed steps')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    p.add_argument('--dtype', choices=['f32', 'bf16'], default='f32')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--norm-eps', type=float, default=1e-5)
    p.add_argument('--rope-theta', type=float, default=10000.0)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--json', action='store_true', help='end with one JSON line only')
    a = p.parse_args()
    if a.kv_heads is None:
        a.kv_heads = a.heads
    if a.d_model % a.heads or a.heads % a.kv_heads or (a.d_model // a.heads) % 2:
        p.error('need d_model divisible by heads, heads by kv_heads, and an even head dimension')
    return a


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Transformer(a)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}], lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    n_params = sum(p.numel() for p in model.parameters())
    autocast = (lambda: torch.autocast('cpu', dtype=torch.bfloat16)) if a.dtype == 'bf16' else contextlib.nullcontext

    def step():
        ids = torch.randint(0, a.vocab, (a.batch, a.seq))
        tgt = torch.randint(0, a.vocab, (a.batch, a.seq))
        with autocast():
            loss = model(ids, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    if not a.json:
        print(f'torch train: {a.layers} layers, d_model {a.d_model}, {n_params:,} parameters, batch {a.batch} x seq {a.seq}, {a.dtype}, '
              f'{torch.get_num_threads()} threads, torch {torch.__version__}')
    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    tps = a.batch * a.seq / median
    if not a.json:
        print(f'{tps:.1f} tokens/s, step {median * 1000:.0f} ms (median of {len(times)}, best {times[0] * 1000:.0f} ms)')
    print(json.dumps({'tokensPerSec': round(tps, 1), 'stepTimeS': round(median, 4), 'bestStepTimeS': round(times[0], 4),
                      'params': n_params, 'dtype': a.dtype, 'threads': torch.get_num_threads(), 'torch': torch.__version__}))


if __name__ == '__main__':
    main()
