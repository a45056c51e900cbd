"""Reference perplexity of a text under the PyTorch model, in pkm score's two modes.

Mirrors client/perplexity.cc window for window, but computes every log-probability with
training/model.py on the exported model, so pkm score can be checked against it.

    /usr/bin/python3 tests/client/reference_ppl.py --mode stride --ctx 256 --stride 128 FILE
"""
import argparse
import json
import math
from pathlib import Path

import sentencepiece as spm
import torch

from training.checkpoint import load_model


def windows(n, mode, ctx, stride, bos):
    """(begin, end, first_token, take) per Score request, as client/perplexity.cc plans them."""
    out = []
    if mode == "chunks":
        first = ctx // 2
        for begin in range(0, n - ctx + 1, ctx):
            out.append((begin, begin + ctx, bos, ctx - 1 - first))
    else:
        scored_until, begin = 1, 0
        while True:
            end = min(begin + ctx, n)
            out.append((begin, end, -1, end - scored_until))
            if end == n:
                break
            scored_until = end
            begin += stride
    return out


@torch.no_grad()
def reference(model_dir, text, mode, ctx, stride):
    torch.set_num_threads(2)
    model = load_model(Path(model_dir)).eval()
    sp = spm.SentencePieceProcessor(model_file=str(Path(model_dir) / "tokenizer.model"))
    ids = [model.cfg.bos_id] + sp.encode(text)
    nll = []
    for begin, end, first_token, take in windows(len(ids), mode, ctx, stride, model.cfg.bos_id):
        window = ids[begin:end]
        if first_token >= 0:
            window[0] = first_token
        logits = model(torch.tensor([window]))[0].double()
        logprobs = torch.log_softmax(logits, dim=-1)
        targets = torch.tensor(window[1:])
        lp = logprobs[:-1].gather(1, targets[:, None])[:, 0]
        nll.extend((-lp[-take:]).tolist())
    mean = sum(nll) / len(nll)
    return {"scored_tokens": len(nll), "mean_nll": mean, "perplexity": math.exp(mean)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file")
    ap.add_argument("--model", default="models/pkm-small")
    ap.add_argument("--mode", choices=["chunks", "stride"], default="stride")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--stride", type=int, default=128)
    args = ap.parse_args()
    print(json.dumps(reference(args.model, Path(args.file).read_text(), args.mode, args.ctx,
                               args.stride)))


if __name__ == "__main__":
    main()
