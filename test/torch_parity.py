#!/usr/bin/python3
# PyTorch re-implementation of zili's transformer (src/nn/transformer.ts), for the parity test
# test/model-torch-parity.test.ts. Reads a dump written by that test (meta.json + data.bin: the
# config, every parameter, the batch, and zili's logits, losses and gradients), runs the same
# forward and backward in PyTorch in float32 and in float64, and prints one JSON line with the max
# relative error of every compared tensor (max |a - b| / max |reference|).
#
# Usage: /usr/bin/python3 test/torch_parity.py DUMP_DIR
# Written from the semantics documented in src/nn and src/tensor/ops.ts, not from another project.
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F


def load_dump(folder):
    with open(f'{folder}/meta.json') as fh:
        meta = json.load(fh)
    raw = open(f'{folder}/data.bin', 'rb').read()
    arrays = {}
    for t in meta['tensors']:
        dt = np.float32 if t['dtype'] == 'f32' else np.int32
        n = int(np.prod(t['shape'])) if t['shape'] else 1
        a = np.frombuffer(raw, dtype=dt, count=n, offset=t['offset']).reshape(t['shape']).copy()
        arrays[t['name']] = a
    return meta, arrays


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(seq, head_dim, theta, dtype):
    half = head_dim // 2
    i = torch.arange(half, dtype=torch.float64)
    inv = theta ** (-2.0 * i / head_dim)
    ang = torch.arange(seq, dtype=torch.float64)[:, None] * inv[None, :]  # [T, D/2]
    # [1, T, 1, D/2] to broadcast over [B, T, H, D/2]
    return torch.cos(ang).to(dtype)[None, :, None, :], torch.sin(ang).to(dtype)[None, :, None, :]


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attention(x, p, prefix, c, B, T, cos, sin):
    H, KV = c['heads'], c['kvHeads']
    D = c['dModel'] // H
    q = (x @ p[f'{prefix}.wq.weight'].t()).view(B, T, H, D)
    k = (x @ p[f'{prefix}.wk.weight'].t()).view(B, T, KV, D)
    v = (x @ p[f'{prefix}.wv.weight'].t()).view(B, T, KV, D)
    q, k = rope(q, cos, sin), rope(k, cos, sin)
    g = H // KV  # query head h reads kv head h // g
    k = k.repeat_interleave(g, dim=2)
    v = v.repeat_interleave(g, dim=2)
    q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))  # [B, H, T, D]
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D))
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float('-inf'))
    o = torch.softmax(scores, dim=-1) @ v
    o = o.permute(0, 2, 1, 3).reshape(B * T, H * D)
    return o @ p[f'{prefix}.wo.weight'].t()


def ffn(x, p, prefix, kind):
    h1 = x @ p[f'{prefix}.w1.weight'].t()
    if kind == 'swiglu':
        h = F.silu(h1) * (x @ p[f'{prefix}.w3.weight'].t())
    elif kind == 'geglu':
        h = F.gelu(h1, approximate='tanh') * (x @ p[f'{prefix}.w3.weight'].t())
    elif kind == 'gelu':
        h = F.gelu(h1, approximate='tanh')
    elif kind == 'relu':
        h = F.relu(h1)
    else:
        raise ValueError(f'ffnKind {kind} not modelled here')
    return h @ p[f'{prefix}.w2.weight'].t()


def route(probs, m, bias, forced=None):
    """Top-k per token on prob + bias, ties to the lower expert index (a stable descending sort)."""
    if forced is not None:
        return forced
    score = probs.detach().double()
    if bias is not None:
        score = score + torch.tensor(bias, dtype=torch.float64)[None, :]
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices
    return order[:, : m['topK']]


def moe(x, p, prefix, c, bias, forced):
    m = c['moe']
    N, E, k = x.shape[0], m['experts'], m['topK']
    logits = x @ p[f'{prefix}.router.weight'].t()
    probs = torch.softmax(logits, dim=-1)
    chosen = route(probs, m, bias if m['balance'] == 'bias' else None, forced)  # [N, k]
    picked = probs.gather(1, chosen)
    gates = picked / picked.sum(-1, keepdim=True) if k > 1 else picked
    y = torch.zeros_like(x)
    for e in range(E):
        tok, slot = (chosen == e).nonzero(as_tuple=True)
        if tok.numel() == 0:
            continue
        ye = ffn(x[tok], p, f'{prefix}.experts.{e}', c['ffnKind'])
        y = y.index_add(0, tok, ye * gates[tok, slot][:, None])
    for s in range(m['sharedExperts']):
        y = y + ffn(x, p, f'{prefix}.shared.{s}', c['ffnKind'])
    loads = torch.bincount(chosen.reshape(-1), minlength=E)
    aux = None
    if m['balance'] == 'aux-loss' and m['auxLossCoef'] > 0:
        f = (loads.to(probs.dtype) / (N * k)).detach()  # a constant: no gradient through the counts
        aux = E * m['auxLossCoef'] * (f * probs.mean(0)).sum()
    return y, aux, chosen, loads


def forward(p, c, ids, targets, bias, forced_routes, dtype):
    B, T = ids.shape
    x = p['tok_embeddings.weight'][ids.reshape(-1)]  # [B*T, d]
    cos, sin = rope_tables(T, c['dModel'] // c['heads'], c['ropeTheta'], dtype)
    aux = None
    routes, loads = {}, {}
    for i in range(c['layers']):
        pre = f'layers.{i}'
        h = x + attention(rms_norm(x, p[f'{pre}.attention_norm.weight'], c['normEps']), p, f'{pre}.attention', c, B, T, cos, sin)
        hn = rms_norm(h, p[f'{pre}.ffn_norm.weight'], c['normEps'])
        if c['moe'] is not None and i >= c['moe']['denseLayers']:
            y, a, chosen, ld = moe(hn, p, f'{pre}.feed_forward', c, bias.get(str(i)), forced_routes.get(i))
            routes[i], loads[i] = chosen, ld
            if a is not None:
                aux = a if aux is None else aux + a
        else:
            y = ffn(hn, p, f'{pre}.feed_forward', c['ffnKind'])
        x = h + y
    out_w = p['tok_embeddings.weight'] if c['tiedEmbeddings'] else p['output.weight']
    logits = rms_norm(x, p['norm.weight'], c['normEps']) @ out_w.t()
    ce = F.cross_entropy(logits, targets.reshape(-1), ignore_index=-1)
    loss = ce + aux if aux is not None else ce
    return logits, ce, aux, loss, routes, loads


def run(meta, arrays, dtype, forced_routes):
    c = meta['config']
    p = {}
    for name in meta['params']:
        p[name] = torch.tensor(arrays[f'param:{name}'], dtype=dtype, requires_grad=True)
    ids = torch.tensor(arrays['ids'], dtype=torch.long)
    targets = torch.tensor(arrays['targets'], dtype=torch.long)
    logits, ce, aux, loss, routes, loads = forward(p, c, ids, targets, meta.get('routerBias') or {}, forced_routes, dtype)
    loss.backward()
    out = {'logits': logits.detach(), 'loss': loss.detach().reshape(1), 'ce': ce.detach().reshape(1)}
    if aux is not None:
        out['aux'] = aux.detach().reshape(1)
    for name in meta['params']:
        g = p[name].grad
        out[f'grad:{name}'] = g if g is not None else torch.zeros_like(p[name])
    return out, routes, loads


def bench_model_errors(meta, arrays):
    """The PyTorch model of bench/torch_train.py on the same weights (dense SwiGLU untied configs):
    max relative error of its loss and every gradient against zili's, so the benchmark is known to
    compare the same model."""
    import importlib.util
    import os
    import types
    c = meta['config']
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'bench', 'torch_train.py')
    spec = importlib.util.spec_from_file_location('torch_train', path)
    tt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tt)
    a = types.SimpleNamespace(layers=c['layers'], d_model=c['dModel'], heads=c['heads'], kv_heads=c['kvHeads'], ffn_hidden=c['ffnHidden'],
                              vocab=c['vocab'], seq=c['seqLen'], norm_eps=c['normEps'], rope_theta=c['ropeTheta'])
    model = tt.Transformer(a)
    model.load_state_dict({n: torch.tensor(arrays[f'param:{n}']) for n in meta['params']}, strict=True)
    loss = model(torch.tensor(arrays['ids'], dtype=torch.long), torch.tensor(arrays['targets'], dtype=torch.long))
    loss.backward()
    errs = {'loss': rel_err(arrays['loss'], loss.detach().reshape(1))}
    for n, prm in model.named_parameters():
        errs[f'grad:{n}'] = rel_err(arrays[f'grad:{n}'], prm.grad)
    return errs


def rel_err(a, ref):
    a = torch.as_tensor(np.asarray(a), dtype=torch.float64).reshape(-1)
    ref = ref.double().reshape(-1)
    scale = ref.abs().max().item()
    diff = (a - ref).abs().max().item()
    return diff / scale if scale > 0 else diff


def main():
    folder = sys.argv[1]
    torch.set_num_threads(1)
    meta, arrays = load_dump(folder)
    r32, routes, loads = run(meta, arrays, torch.float32, {})
    # float64 reuses the float32 routing so a near-tie cannot flip a choice between precisions
    r64, _, _ = run(meta, arrays, torch.float64, routes)
    ts_loads = {int(k): v for k, v in (meta.get('loads') or {}).items()}
    loads_match = all(loads[i].tolist() == ts_loads.get(i) for i in loads) and set(loads) == set(ts_loads)
    names = ['logits', 'loss', 'ce'] + (['aux'] if 'aux' in r32 else []) + [f'grad:{n}' for n in meta['params']]
    report = {'f32': {}, 'f64': {}, 'torch32vs64': {}}
    for n in names:
        if n not in arrays:
            report.setdefault('missing', []).append(n)
            continue
        report['f32'][n] = rel_err(arrays[n], r32[n])
        report['f64'][n] = rel_err(arrays[n], r64[n])
        report['torch32vs64'][n] = rel_err(r32[n].numpy(), r64[n])
    c = meta['config']
    if c['moe'] is None and c['ffnKind'] == 'swiglu' and not c['tiedEmbeddings']:
        report['benchModel'] = bench_model_errors(meta, arrays)
    report['loadsMatch'] = loads_match
    report['torchLoads'] = {str(i): v.tolist() for i, v in loads.items()}
    report['loss'] = {'zili': float(arrays['loss'].reshape(-1)[0]), 'torch32': r32['loss'].item(), 'torch64': r64['loss'].item()}
    print(json.dumps(report))


if __name__ == '__main__':
    main()
