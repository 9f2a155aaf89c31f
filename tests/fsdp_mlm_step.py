"""One SGD step of a masked-LM with tied embeddings, sharded with FSDP2 when launched by torchrun.

Used by tests/test_distributed.py: python tests/fsdp_mlm_step.py CHECKPOINT OUTPUT [--fsdp]
"""

import os
import sys

import torch
import torch.distributed as dist

import deberta_pt


def main(checkpoint: str, output: str, fsdp: bool) -> None:
    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    model = deberta_pt.DebertaForMaskedLM.from_pretrained(checkpoint).train()
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for layer in model.deberta.encoder.layer:
            fully_shard(layer)
        fully_shard(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    ids = torch.arange(4 * 9).reshape(4, 9) % 90 + 5
    labels = torch.where(ids % 3 == 0, ids, -100)
    per_rank = 4 // world
    rows = slice(rank * per_rank, (rank + 1) * per_rank)
    model(input_ids=ids[rows], labels=labels[rows]).loss.backward()
    optimizer.step()
    model.save_pretrained(output)
    if distributed:
        dist.destroy_process_group()
        # Now and then a gloo thread still running at interpreter teardown aborts the process ("terminate
        # called without an active exception") after the work is done and saved; skip that teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--fsdp" in sys.argv)
