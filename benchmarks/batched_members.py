"""Cost of a training step for K ensemble members (issue 13): K separate networks one after another, K networks
stacked and vectorised with ``torch.func`` (``stack_module_state`` + ``functional_call`` + ``vmap``), and, as
a lower bound on what batching can give, one network on a batch of K codes.

Each step is forward, an MSE loss against a random target, backward and an Adam update, on the default
network at ``--size`` (RGB), with the machine's torch threads. Batch normalisation normalises each member's
own activations under ``vmap`` (``replace_all_batch_norm_modules_``: no running statistics, which DIP never
uses). Timings: median of ``--steps`` steps after 5 warm-up steps, configurations interleaved in rounds.

Usage:
    python benchmarks/batched_members.py --size 128 --members 1,2,4,8 \
        --out benchmarks/results/speed/batched-members.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap

from dipddpm.bench.scripts import script_meta
from dipddpm.nets import NetConfig, SkipUNet


def sequential_step(models, optimisers, codes, targets):
    """One step of K separate networks, one after another."""
    for model, optimiser, code, target in zip(models, optimisers, codes, targets, strict=True):
        optimiser.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(code), target).backward()
        optimiser.step()


def make_vmapped(models):
    """Stacked parameters of K networks and a function running all K in one vectorised call."""
    base = copy.deepcopy(models[0]).to("meta")
    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}

    def one(p, b, code):
        return functional_call(base, (p, b), (code,))

    return params, buffers, vmap(one)


def vmapped_step(params, buffers, run, optimiser, codes, targets):
    """One step of K stacked networks: one forward and backward for all."""
    optimiser.zero_grad(set_to_none=True)
    outputs = run(params, buffers, codes)
    ((outputs - targets) ** 2).mean(dim=(1, 2, 3, 4)).sum().backward()
    optimiser.step()


def batch_step(model, optimiser, codes, targets):
    """One network on a batch of K codes (shared weights: a cost bound, not an ensemble)."""
    optimiser.zero_grad(set_to_none=True)
    torch.nn.functional.mse_loss(model(codes[:, 0]), targets[:, 0]).backward()
    optimiser.step()


def measure(k: int, size: int, net: NetConfig, steps: int) -> dict:
    """Median ms per step of each way of training ``k`` members, interleaved in rounds."""
    models = [replace_all_batch_norm_modules_(SkipUNet(3, net)) for _ in range(k)]
    codes = torch.rand(k, 1, net.input_channels, size, size) * 0.1
    targets = torch.rand(k, 1, 3, size, size)
    optimisers = [torch.optim.Adam(m.parameters(), lr=0.01) for m in models]
    params, buffers, run = make_vmapped(models)
    stacked_optimiser = torch.optim.Adam(params.values(), lr=0.01)
    shared = replace_all_batch_norm_modules_(SkipUNet(3, net))
    shared_optimiser = torch.optim.Adam(shared.parameters(), lr=0.01)
    setups = {"sequential": lambda: sequential_step(models, optimisers, codes, targets),
              "vmap": lambda: vmapped_step(params, buffers, run, stacked_optimiser, codes, targets),
              "one-net-batch": lambda: batch_step(shared, shared_optimiser, codes, targets)}
    times: dict[str, list[float]] = {name: [] for name in setups}
    for step in setups.values():
        for _ in range(5):
            step()
    for _ in range(steps):
        for name, step in setups.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {"size": size, "members": k, "threads": torch.get_num_threads(),
            **{f"{name}_ms": round(1000 * statistics.median(t), 1) for name, t in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--members", default="1,2,4,8")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    meta = script_meta("benchmarks/batched_members.py")
    for k in [int(v) for v in args.members.split(",")]:
        row = measure(k, args.size, NetConfig(), args.steps)
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as handle:
            handle.write(json.dumps({**row, "meta": meta}) + "\n")


if __name__ == "__main__":
    main()
