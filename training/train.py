"""Trains the reference PKM model on the corpus (CPU, Debian's torch; CUDA when available).

Learning rate: linear warm-up, then cosine decay over the time budget (the schedule follows
elapsed time, so a run stopped by --minutes ends annealed). Stops early when held-out
perplexity improves by less than --min-improvement over --patience evaluations.
Values of the memory use their own Adam group (lr 1e-3, no weight decay), as in the paper.

Writes into --out: tokens_{train,heldout}.npy (token streams), log.jsonl (one line per
evaluation), best.pt (model state and config of the best held-out evaluation).

Usage: /usr/bin/python3 -m training.train --corpus data/corpus --tokenizer data/tokenizer.model \
           --out data/train --minutes 95
"""
import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

from training.config import QUERY_BATCHNORM, Config, ModelConfig, set_query_batchnorm
from training.model import PKMTransformer


def encode_split(sp, path: Path, bos: int, eos: int) -> np.ndarray:
    """One stream of token ids: <s> doc </s> <s> doc </s> ..."""
    ids = []
    for doc in path.read_text().splitlines():
        ids.append(bos)
        ids.extend(sp.encode(doc))
        ids.append(eos)
    return np.asarray(ids, dtype=np.int32)


def load_streams(args, cfg: ModelConfig):
    sp = spm.SentencePieceProcessor(model_file=str(args.tokenizer))
    if sp.vocab_size() != cfg.vocab_size:
        raise SystemExit(f"train: tokenizer has {sp.vocab_size()} pieces, config expects {cfg.vocab_size}")
    streams = {}
    for split in ("train", "heldout"):
        cache = args.out / f"tokens_{split}.npy"
        if not cache.exists():
            np.save(cache, encode_split(sp, args.corpus / f"{split}.txt", cfg.bos_id, cfg.eos_id))
        streams[split] = torch.from_numpy(np.load(cache).astype(np.int64))
    return streams


@torch.no_grad()
def evaluate(model, stream: torch.Tensor, seq_len: int, max_windows: int = 0, batch: int = 16) -> float:
    """Mean NLL (nats/token) over non-overlapping windows of seq_len+1 tokens (every target scored once)."""
    model.eval()
    n = (len(stream) - 1) // seq_len
    if max_windows:
        n = min(n, max_windows)
    total, count = 0.0, 0
    for start in range(0, n, batch):
        rows = [stream[i * seq_len:(i + 1) * seq_len + 1] for i in range(start, min(n, start + batch))]
        x = torch.stack(rows)
        logits = model(x[:, :-1])
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum").item()
        count += x[:, 1:].numel()
    model.train()
    return total / count


def param_groups(model, lr: float, values_lr: float, wd: float):
    tables = {id(p) for p in model.value_tables().values()}
    decay, no_decay, values = [], [], []
    for name, p in model.named_parameters():  # a shared table appears once
        if id(p) in tables:
            values.append(p)
        elif p.dim() >= 2 and "tok_embeddings" not in name and not name.endswith("pkm.keys"):
            decay.append(p)
        else:
            no_decay.append(p)
    return [{"params": decay, "weight_decay": wd, "lr": lr, "base_lr": lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": lr, "base_lr": lr},
            {"params": values, "weight_decay": 0.0, "lr": values_lr, "base_lr": values_lr}]


def train_step(model, opt, x: torch.Tensor) -> torch.Tensor:
    """One step of the recipe on x [B, T+1]: next-token cross-entropy, gradients clipped to
    norm 1, an optimiser step. Returns the loss (before the step)."""
    logits = model(x[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, model.cfg.vocab_size), x[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def read_config(path, query_batchnorm: bool):
    """(config, what best.pt stores of it): a version 2 config.json as such, or version 1 overrides
    as the ModelConfig fields that older checkpoints hold (their pkm_query_batchnorm included)."""
    raw = json.loads(path.read_text()) if path else {}
    if raw.get("format_version") == 2:
        cfg = Config.from_json(raw)
        set_query_batchnorm(cfg, query_batchnorm)
        return cfg, {**cfg.to_json(), QUERY_BATCHNORM: query_batchnorm}
    cfg = ModelConfig(**raw)
    return cfg, dataclasses.asdict(cfg)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    ap.add_argument("--tokenizer", type=Path, default=Path("data/tokenizer.model"))
    ap.add_argument("--out", type=Path, default=Path("data/train"))
    ap.add_argument("--config", type=Path,
                    help="a format_version 2 config.json (any family), or JSON with version 1 ModelConfig overrides")
    ap.add_argument("--query-batchnorm", action="store_true",
                    help="with a version 2 --config: a BatchNorm on each memory query that has a bias "
                         "(folded at export; version 1 configs say it in pkm_query_batchnorm)")
    ap.add_argument("--minutes", type=float, default=95.0, help="wall-clock budget")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--values-lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200, help="warm-up steps")
    ap.add_argument("--eval-every", type=int, default=150, help="steps between evaluations")
    ap.add_argument("--eval-windows", type=int, default=96, help="held-out windows per periodic evaluation")
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--min-improvement", type=float, default=0.002, help="relative perplexity gain that counts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg, saved_config = read_config(args.config, args.query_batchnorm)
    streams = load_streams(args, cfg)
    train, heldout = streams["train"], streams["heldout"]
    print(f"train: {len(train)} train tokens, {len(heldout)} held-out tokens", flush=True)

    model = PKMTransformer(cfg)
    opt = torch.optim.AdamW(param_groups(model, args.lr, args.values_lr, args.weight_decay), betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(args.seed)
    budget = args.minutes * 60
    start = time.time()
    log = open(args.out / "log.jsonl", "w")
    best, stale, step, seen, ema = math.inf, 0, 0, 0, None
    while True:
        elapsed = time.time() - start
        frac = min(1.0, elapsed / budget)
        scale = min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * scale
        starts = torch.randint(0, len(train) - args.seq_len - 1, (args.batch,), generator=gen)
        x = torch.stack([train[s:s + args.seq_len + 1] for s in starts.tolist()])
        loss = train_step(model, opt, x)
        step += 1
        seen += x[:, 1:].numel()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        done = time.time() - start >= budget
        if step % args.eval_every == 0 or done:
            nll = evaluate(model, heldout, args.seq_len, args.eval_windows)
            rec = {"step": step, "tokens": seen, "seconds": round(time.time() - start, 1), "lr": opt.param_groups[0]["lr"],
                   "train_loss": ema, "heldout_loss": nll, "heldout_ppl": math.exp(nll)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            if nll < best * (1 - args.min_improvement) or best == math.inf:
                stale = 0
            else:
                stale += 1
            if nll < best:
                best = nll
                torch.save({"config": saved_config, "model": model.state_dict(), "step": step,
                            "tokens": seen, "seconds": rec["seconds"], "args": {k: str(v) for k, v in vars(args).items()}},
                           args.out / "best.pt")
            if stale >= args.patience:
                print(f"train: stopping, held-out perplexity improved < {args.min_improvement:.1%} "
                      f"over {args.patience} evaluations", flush=True)
                break
        if done:
            print("train: time budget reached", flush=True)
            break


if __name__ == "__main__":
    main()
