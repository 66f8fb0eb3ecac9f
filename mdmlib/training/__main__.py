"""The torchrun entry point of data-parallel training: ``python -m mdmlib.training``.

``mdmlib.training.distributed.launch_data_parallel`` starts it; each process trains its
slice of every global batch (NCCL on GPUs, gloo on the CPU).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from mdmlib.config import load_config
from mdmlib.data.splits import load_split
from mdmlib.training.distributed import DataParallel
from mdmlib.training.job import train_job
from mdmlib.training.loop import run_training


def main(argv: list[str] | None = None) -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON of the run's config")
    parser.add_argument("--model", required=True, help="model name, t<lo>-<hi>_i<iterations>[_<recipe>]")
    parser.add_argument("--train", required=True, help="the training split (.npz)")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument("--init", help="a checkpoint to start from instead of a fresh model")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    parallel = DataParallel(dist.get_rank(), dist.get_world_size())
    local_rank = int(os.environ.get("LOCAL_RANK", parallel.rank))
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.set_num_threads(args.threads)
    cfg = load_config(json.loads(Path(args.config).read_text()))
    job = train_job(args.model, cfg)
    images, _ = load_split(args.train)
    log = print if parallel.writes else (lambda line: None)
    log(f"{job} data-parallel over {parallel.world_size} processes on {device.type}")
    try:
        run_training(cfg, job, images, args.state_dir, device, log=log, parallel=parallel, init=args.init)
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
