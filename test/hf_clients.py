# The Hugging Face side of test/interop-clients.test.ts: loads zili's exported folders with
# transformers (AutoModelForCausalLM / AutoTokenizer, local files only), and zili's GGUF files with
# the gguf package's reader, and prints one JSON object with what the test compares against zili:
# the logits of given token ids, tokenizations, the chat template's text, and GGUF tensor types and
# the exact f16/bf16 values of the embedding table next to torch's own rounding of the f32 export.
#
# Usage: .cache/venv/bin/python test/hf_clients.py SPEC.json   (spec written by the test)
import json
import sys

import numpy as np
import torch
from gguf import GGUFReader
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

spec = json.load(open(sys.argv[1]))
out = {"models": [], "gguf": []}
for m in spec["models"]:
    model = AutoModelForCausalLM.from_pretrained(m["dir"], local_files_only=True, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(m["dir"], local_files_only=True)
    with torch.no_grad():
        logits = model(torch.tensor([m["ids"]])).logits[0].numpy()
    out["models"].append({
        "class": type(model).__name__,
        "logits": logits.astype(np.float64).ravel().tolist(),
        "tokens": [tok(t, add_special_tokens=True)["input_ids"] for t in spec["texts"]],
        "decoded": [tok.decode(tok(t)["input_ids"]) for t in spec["texts"]],
        "chat": tok.apply_chat_template(spec["messages"], tokenize=False, add_generation_prompt=True),
    })
for g in spec["gguf"]:
    r = GGUFReader(g["file"])
    types = {t.name: t.tensor_type.name for t in r.tensors}
    emb = next(t for t in r.tensors if t.name == "token_embd.weight")
    ref = torch.from_numpy(load_file(g["hf"] + "/model.safetensors")["model.embed_tokens.weight"])
    want = ref.to(torch.float16 if g["dtype"] == "f16" else torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    got = np.asarray(emb.data).view(np.uint16).reshape(want.shape) if g["dtype"] != "f32" else None
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    out["gguf"].append({
        "dtype": g["dtype"],
        "types": types,
        "arch": arch,
        "n_tokens": len(r.fields["tokenizer.ggml.tokens"].data),
        "embedding_bits_equal": bool(got is not None and np.array_equal(got, want)),
    })
print(json.dumps(out))
