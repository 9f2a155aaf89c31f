"""Train the embedded demo checkpoint `deberta-zoo/tiny-mlm` (deberta_common/models/tiny-mlm/) from scratch.

Steps, all on the CPU and all offline:

1. the corpus: `scripts/build_corpus.py` (English sentences from the docstrings, comments and docs installed with
   Python and the project's packages), built into --corpus unless already there; its held-out files are never
   trained on;
2. a GPT-2 style byte-level BPE vocabulary (`tokenizers`' ByteLevelBPETokenizer; special tokens [PAD]=0, [CLS]=1,
   [SEP]=2, [UNK]=3, [MASK]=4) written as vocab.json + merges.txt, which DebertaTokenizer(Fast) read;
3. a small DeBERTa v1 with relative attention only (c2p|p2c, no absolute positions, legacy MLM head tied to the
   word embeddings), trained with `deberta_pt.DebertaForMaskedLM` on masked-LM: 15% of the tokens chosen, of
   those 80% -> [MASK], 10% -> a random token, 10% unchanged; AdamW, linear warm-up then linear decay;
4. masked-token accuracy on the held-out text (each chosen token replaced by [MASK], fixed seed), written to
   metrics.json; the weights are saved in float16 (`save_pretrained`, safetensors) with the tokenizer files.

Training sequences pack whole consecutive sentences, up to --seq-len tokens with [CLS] ... [SEP]; a third of them
are cut shorter so that the model also sees single short sentences (what fill-mask gets).

Reproducible: the same corpus, --seed and thread count give the same model (the corpus depends on what is
installed; build/tiny-mlm-corpus/manifest.json lists it). --max-minutes only stops early as a safety net.

    python scripts/train_demo_model.py --seed 0            # ~25 min on 2 CPU cores
    python scripts/train_demo_model.py --steps 20 --out /tmp/tiny   # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

# With other work on the same cores, OpenMP's default spin-waiting makes 2 threads up to ~6x slower than 1;
# passive waiting keeps 2 threads about as fast as 1 on a busy machine and faster on an idle one.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # run from a checkout without installing

from deberta_common.config import DebertaConfig  # noqa: E402
from deberta_common.tokenization import DebertaTokenizer  # noqa: E402
from deberta_pt import DebertaForMaskedLM  # noqa: E402

SPECIAL_TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]  # ids 0..4
PAD, CLS, SEP, UNK, MASK = range(5)


def read_docs(path: str) -> list[list[str]]:
    """The corpus format: one sentence a line, a blank line between documents."""
    with open(path, encoding="utf-8") as handle:
        blocks = handle.read().split("\n\n")
    return [[s for s in block.split("\n") if s.strip()] for block in blocks if block.strip()]


def train_vocabulary(docs: list[list[str]], vocab_size: int, out: str) -> DebertaTokenizer:
    """Byte-level BPE over the training sentences; writes vocab.json + merges.txt (GPT-2 format) into out."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(
        (s for doc in docs for s in doc), vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    os.makedirs(out, exist_ok=True)
    bpe.save_model(out)
    tokenizer = DebertaTokenizer(os.path.join(out, "vocab.json"), os.path.join(out, "merges.txt"))
    ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert ids == list(range(5)), f"special token ids {ids}"
    return tokenizer


def encode_docs(docs: list[list[str]], out: str) -> list[list[list[int]]]:
    """Token ids of every sentence (the fast tokenizer, same ids as the Python one), grouped by document."""
    from deberta_common.tokenization_fast import DebertaTokenizerFast

    fast = DebertaTokenizerFast(os.path.join(out, "vocab.json"), os.path.join(out, "merges.txt"))
    flat = [s for doc in docs for s in doc]
    ids = fast(flat, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)["input_ids"]
    grouped, i = [], 0
    for doc in docs:
        grouped.append(ids[i : i + len(doc)])
        i += len(doc)
    return grouped


def pack(docs: list[list[list[int]]], seq_len: int, rng: random.Random, short_fraction: float) -> list[list[int]]:
    """Sequences [CLS] s1 s2 ... [SEP] of whole consecutive sentences from one document, at most seq_len long."""
    room_max = seq_len - 2
    sequences = []
    for doc in docs:
        current: list[int] = []
        room = room_max
        for sentence in doc:
            sentence = sentence[:room_max]
            if current and len(current) + len(sentence) > room:
                sequences.append([CLS] + current + [SEP])
                current = []
            if not current:
                room = rng.randint(8, room_max) if rng.random() < short_fraction else room_max
            current.extend(sentence)
        if current:
            sequences.append([CLS] + current[:room_max] + [SEP])
    return sequences


def batches(sequences: list[list[int]], batch_size: int, rng: np.random.Generator):
    """Shuffled batches, each (ids, attention_mask) padded to its longest row; length-sorted within chunks of
    50 batches so that little compute goes to padding."""
    order = rng.permutation(len(sequences))
    chunk = batch_size * 50
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(sequences[i]))
        groups = [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
        for g in rng.permutation(len(groups)):
            rows = [sequences[i] for i in groups[g]]
            width = max(len(r) for r in rows)
            ids = np.full((len(rows), width), PAD, dtype=np.int64)
            for r, row in enumerate(rows):
                ids[r, : len(row)] = row
            yield torch.from_numpy(ids), torch.from_numpy((ids != PAD).astype(np.int64))


def mask_tokens(ids: torch.Tensor, vocab_size: int, generator: torch.Generator, mlm_probability: float = 0.15,
                all_mask: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: choose mlm_probability of the non-special tokens; 80% -> [MASK], 10% random, 10% kept.
    Returns (corrupted ids, labels with -100 where not chosen). all_mask: every chosen token -> [MASK]."""
    special = ids < len(SPECIAL_TOKENS)
    chosen = (torch.rand(ids.shape, generator=generator) < mlm_probability) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    corrupted = ids.clone()
    if all_mask:
        corrupted[chosen] = MASK
        return corrupted, labels
    roll = torch.rand(ids.shape, generator=generator)
    corrupted[chosen & (roll < 0.8)] = MASK
    random_ids = torch.randint(len(SPECIAL_TOKENS), vocab_size, ids.shape, generator=generator)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    corrupted[swap] = random_ids[swap]
    return corrupted, labels


def masked_logits(model: DebertaForMaskedLM, ids: torch.Tensor, attention_mask: torch.Tensor,
                  labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the chosen positions only: the vocabulary projection of the other 85% would be wasted work."""
    hidden = model.deberta(input_ids=ids, attention_mask=attention_mask).last_hidden_state
    where = labels != -100
    return model.cls(hidden[where]), labels[where]


@torch.no_grad()
def evaluate(model: DebertaForMaskedLM, sequences: list[list[int]], vocab_size: int, seed: int,
             batch_size: int = 64) -> dict[str, float]:
    """Held-out masked-token accuracy: 15% of the tokens replaced by [MASK] (fixed seed), top-1/top-5 and loss."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    correct1 = correct5 = total = 0
    loss_sum = 0.0
    for ids, attention_mask in batches(sequences, batch_size, np.random.default_rng(seed)):
        corrupted, labels = mask_tokens(ids, vocab_size, generator, all_mask=True)
        if not (labels != -100).any():
            continue
        logits, targets = masked_logits(model, corrupted, attention_mask, labels)
        loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
        top5 = logits.topk(5, dim=-1).indices
        correct1 += int((top5[:, 0] == targets).sum())
        correct5 += int((top5 == targets[:, None]).any(dim=-1).sum())
        total += int(targets.numel())
    model.train()
    return {"top1": correct1 / total, "top5": correct5 / total, "loss": loss_sum / total, "masked_tokens": total}


def make_config(vocab_size: int, args: argparse.Namespace) -> DebertaConfig:
    return DebertaConfig(
        vocab_size=vocab_size,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.hidden * 4,
        max_position_embeddings=args.max_positions,
        relative_attention=True,
        max_relative_positions=-1,
        position_biased_input=False,
        pos_att_type="c2p|p2c",
        type_vocab_size=0,
        hidden_dropout_prob=args.dropout,
        attention_probs_dropout_prob=args.dropout,
        layer_norm_eps=1e-7,
        pad_token_id=PAD,
        legacy=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=os.path.join(ROOT, "build", "tiny-mlm-corpus"))
    parser.add_argument("--out", default=os.path.join(ROOT, "deberta_common", "models", "tiny-mlm"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=6000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--max-positions", type=int, default=128, help="max_position_embeddings (relative span)")
    parser.add_argument("--seq-len", type=int, default=128, help="longest training sequence")
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=float, default=0.06, help="fraction of the steps")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-minutes", type=float, default=45, help="stop early after this long (safety net)")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--evaluate-only", action="store_true",
                        help="only measure the saved checkpoint in --out on the held-out text (updates metrics.json)")
    args = parser.parse_args(argv)
    if args.evaluate_only:
        evaluate_saved(args)
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    py_rng = random.Random(args.seed)
    np_rng = np.random.default_rng(args.seed)
    mask_gen = torch.Generator().manual_seed(args.seed)

    if not os.path.isfile(os.path.join(args.corpus, "train.txt")):
        sys.path.insert(0, HERE)
        import build_corpus

        build_corpus.build(args.corpus)
    with open(os.path.join(args.corpus, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    train_docs = read_docs(os.path.join(args.corpus, "train.txt"))
    heldout_docs = read_docs(os.path.join(args.corpus, "heldout.txt"))

    start = time.time()
    tokenizer = train_vocabulary(train_docs, args.vocab_size, args.out)
    vocab_size = len(tokenizer)
    train_seq = pack(encode_docs(train_docs, args.out), args.seq_len, py_rng, short_fraction=1 / 3)
    heldout_seq = pack(encode_docs(heldout_docs, args.out), args.seq_len, random.Random(args.seed), 1 / 3)
    train_tokens = sum(len(s) for s in train_seq)
    print(f"vocabulary {vocab_size} tokens ({time.time() - start:.0f} s); {len(train_seq)} training sequences, "
          f"{train_tokens} tokens; {len(heldout_seq)} held-out sequences", flush=True)

    config = make_config(vocab_size, args)
    model = DebertaForMaskedLM(config)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embeddings" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embeddings" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98), eps=1e-6,
    )
    warmup = max(1, int(args.warmup * args.steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (args.steps - s) / max(1, args.steps - warmup)))
    )
    # A fixed slice of the held-out set for progress reports; the final numbers use all of it.
    probe = heldout_seq[: max(1, len(heldout_seq) // 4)]

    step, epoch, seen_tokens, log_loss = 0, 0, 0, []
    train_start = time.time()
    stopped_early = False
    while step < args.steps and not stopped_early:
        epoch += 1
        for ids, attention_mask in batches(train_seq, args.batch_size, np_rng):
            corrupted, labels = mask_tokens(ids, vocab_size, mask_gen)
            logits, targets = masked_logits(model, corrupted, attention_mask, labels)
            loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            seen_tokens += int(attention_mask.sum())
            log_loss.append(float(loss.detach()))
            minutes = (time.time() - train_start) / 60
            if step % 50 == 0:
                print(f"step {step}/{args.steps} epoch {epoch} loss {np.mean(log_loss):.3f} "
                      f"lr {schedule.get_last_lr()[0]:.2e} {seen_tokens / (minutes * 60):.0f} tok/s "
                      f"{minutes:.1f} min", flush=True)
                log_loss = []
            if step % args.eval_every == 0:
                m = evaluate(model, probe, vocab_size, args.seed)
                print(f"  held-out probe: top1 {m['top1']:.3f} top5 {m['top5']:.3f} loss {m['loss']:.3f}", flush=True)
            if args.max_minutes is not None and minutes > args.max_minutes:
                print(f"stopping early at step {step}: over --max-minutes {args.max_minutes}", flush=True)
                stopped_early = True
            if step >= args.steps or stopped_early:
                break
    train_minutes = (time.time() - train_start) / 60

    metrics = evaluate(model, heldout_seq, vocab_size, args.seed)
    print(f"held-out masked-token accuracy: top1 {metrics['top1']:.4f} top5 {metrics['top5']:.4f} "
          f"(loss {metrics['loss']:.3f}, {metrics['masked_tokens']} masked tokens)", flush=True)

    model.eval()
    model.half()  # float16 storage keeps the package data small; from_pretrained loads it as float32
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)  # vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json
    summary = {
        "heldout": {
            "masked_token_accuracy_top1": round(metrics["top1"], 4),
            "masked_token_accuracy_top5": round(metrics["top5"], 4),
            "loss": round(metrics["loss"], 4),
            "masked_tokens": metrics["masked_tokens"],
            "protocol": "15% of non-special tokens replaced by [MASK] (torch seed = --seed), float32 weights",
            "sentences": manifest["heldout"]["sentences"],
            "words": manifest["heldout"]["words"],
        },
        "training": {
            "seed": args.seed, "steps": step, "epochs_started": epoch, "batch_size": args.batch_size,
            "seq_len": args.seq_len, "lr": args.lr, "warmup_steps": warmup, "weight_decay": args.weight_decay,
            "dropout": args.dropout, "threads": args.threads, "tokens_seen": seen_tokens,
            "train_minutes": round(train_minutes, 1), "stopped_early": stopped_early,
            "torch": torch.__version__,
        },
        "corpus": {
            "train_sentences": manifest["train"]["sentences"], "train_words": manifest["train"]["words"],
            "train_tokens": train_tokens, "train_sha256": manifest["train"]["sha256"],
            "heldout_sha256": manifest["heldout"]["sha256"], "python": manifest["python"],
        },
        "model": {"parameters": n_params, "vocab_size": vocab_size, "storage_dtype": "float16"},
    }
    with open(os.path.join(args.out, "metrics.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")
    print(f"saved to {args.out} ({train_minutes:.1f} min training)", flush=True)
    evaluate_saved(args)


def evaluate_saved(args: argparse.Namespace) -> dict[str, float]:
    """The same held-out measurement on the checkpoint as saved (float16 weights loaded as float32), which is
    what users get; recorded in metrics.json next to the in-training number."""
    torch.set_num_threads(args.threads)
    model = DebertaForMaskedLM.from_pretrained(args.out)
    heldout = pack(encode_docs(read_docs(os.path.join(args.corpus, "heldout.txt")), args.out), args.seq_len,
                   random.Random(args.seed), 1 / 3)
    metrics = evaluate(model, heldout, model.config.vocab_size, args.seed)
    path = os.path.join(args.out, "metrics.json")
    with open(path, encoding="utf-8") as handle:
        summary = json.load(handle)
    summary["heldout_saved_checkpoint"] = {
        "masked_token_accuracy_top1": round(metrics["top1"], 4),
        "masked_token_accuracy_top5": round(metrics["top5"], 4),
        "loss": round(metrics["loss"], 4),
        "masked_tokens": metrics["masked_tokens"],
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")
    print(f"saved checkpoint, held-out: top1 {metrics['top1']:.4f} top5 {metrics['top5']:.4f}", flush=True)
    return metrics


if __name__ == "__main__":
    main()
