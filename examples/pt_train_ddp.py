"""Fine-tune DebertaForSequenceClassification on several processes: DDP, or FSDP2 with --fsdp.

    torchrun --nproc_per_node 2 examples/pt_train_ddp.py --model CKPT --train train.jsonl --output OUT
    python examples/pt_train_ddp.py ...          # one process, no torch.distributed

train: JSON lines or CSV with a "text" and an integer "label" column. The global batch (--batch-size) is
split evenly over the ranks, so a run on N processes takes the same steps as one process on the same
global batch. The checkpoint is written by rank 0 as an ordinary folder (weights gathered from the shards).
On GPUs, torchrun starts one process per GPU and the nccl backend is used; see docs/distributed.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random

import torch
import torch.distributed as dist

from deberta_common import DebertaTokenizerFast
from deberta_pt import DebertaForSequenceClassification


def read_rows(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        if path.endswith(".csv"):
            return list(csv.DictReader(fh))
        return [json.loads(line) for line in fh if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint folder (config.json + weights)")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: --model)")
    parser.add_argument("--train", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--num-labels", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="global batch, split over the ranks")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    parser.add_argument("--fsdp", action="store_true", help="shard parameters with FSDP2 (fully_shard)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="autocast the forward to bfloat16")
    parser.add_argument("--no-dropout", action="store_true", help="dropout off (for exact comparisons)")
    parser.add_argument("--no-shuffle", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} must divide evenly over {world} processes")
    torch.manual_seed(args.seed)

    tokenizer = DebertaTokenizerFast.from_pretrained(args.tokenizer or args.model)
    overrides = dict(num_labels=args.num_labels)
    if args.no_dropout:
        overrides.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, cls_dropout=0.0)
    # Loaded before wrapping: every rank starts from the same weights.
    model = DebertaForSequenceClassification.from_pretrained(args.model, ignore_mismatched_sizes=True, **overrides)
    model.to(device).train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if args.fsdp:
        from torch.distributed.fsdp import fully_shard

        for layer in model.deberta.encoder.layer:
            fully_shard(layer)
        fully_shard(model)
        trained = model
    elif distributed:
        trained = torch.nn.parallel.DistributedDataParallel(model)
    else:
        trained = model
    optimizer = (torch.optim.AdamW if args.optimizer == "adamw" else torch.optim.SGD)(model.parameters(), lr=args.lr)

    rows = read_rows(args.train)
    per_rank = args.batch_size // world
    batches = []
    for epoch in range(args.epochs):
        order = list(range(len(rows)))
        if not args.no_shuffle:
            random.Random(args.seed + epoch).shuffle(order)
        batches += [order[i : i + args.batch_size] for i in range(0, len(order) - args.batch_size + 1, args.batch_size)]
    if args.max_steps:
        batches = batches[: args.max_steps]
    for step, batch_rows in enumerate(batches, 1):
        mine = batch_rows[rank * per_rank : (rank + 1) * per_rank]
        batch = tokenizer([rows[i]["text"] for i in mine], padding=True, truncation=True,
                          max_length=args.max_length, return_tensors="pt")
        labels = torch.tensor([int(rows[i]["label"]) for i in mine])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            out = trained(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                          labels=labels.to(device))
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if rank == 0:
            print(f"step {step} loss {out.loss.item():.4f}", flush=True)
    model.save_pretrained(args.output)  # every rank joins the gather; rank 0 writes
    if rank == 0:
        tokenizer.save_pretrained(args.output)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
