"""Speed levers probed on one noisy tuning crop (issue 12): one DIP trajectory per call, every step recorded.

This harness has its own minimal training loop on purpose: it tries levers the package does not have (a cosine
learning-rate decay, annealed input jitter, a coarse start at half resolution, the blurred training target as
input channels, decoupled weight decay, a net at half resolution with pixel shuffle, a total-variation term in
the loss (issue 13)), so that only the ones the
numbers justify reach :mod:`dipddpm.engine`. Everything else is the package's default run: the skip U-Net, the
fixed code ``u`` (32 channels, U(0, 0.1)), jitter 1/30, EMA 0.99 output, training on ``y + a sigma z`` (a =
0.25, sigma estimated) and the recorruption criterion ``||xbar - (y - sigma/a z)||^2 / N``.

The clean crop only scores (true PSNR of the EMA output every step); the stop is replayed from the
criterion with the package's rule (minimum, patience P, ``dipddpm.bench.report.replay_minimum``) for
P = 50, 100, 150. A call ends at ``--steps`` or once the PSNR has not improved for 300 steps and the
criterion for 160. One JSON line per call, appended to ``--out``: the arguments, the peak, each replayed
stop (iteration, PSNR, gap, wall seconds at which it fired) and the (iteration, seconds, PSNR) curve every
10 steps.

Usage: python benchmarks/lever_probe.py --image cbsd68:0 --crop 128 --tag NAME [--lr 0.03 --warmup 100
       --beta2 0.99 ...] --out benchmarks/results/speed/lever-probes.jsonl
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dipddpm.bench.data import list_images, load_clean, make_noisy
from dipddpm.bench.methods import to_tensor
from dipddpm.bench.report import replay_minimum
from dipddpm.bench.scripts import script_meta
from dipddpm.nets import NetConfig, SkipUNet, padded_size
from dipddpm.noise import estimate_sigma
from dipddpm.priors import total_variation
from dipddpm.restore import draw_noise


def schedule(kind: str, step: int) -> float:
    """Factor of a schedule ``none``, ``cos:T`` (half cosine to 0 at T) or ``lin:T`` (linear to 0 at T)."""
    name, _, length = kind.partition(":")
    if name == "cos":
        return 0.5 * (1 + math.cos(math.pi * min(step, float(length)) / float(length)))
    if name == "lin":
        return max(0.0, 1 - step / float(length))
    return 1.0


def gaussian_blur(image: torch.Tensor, width: float) -> torch.Tensor:
    radius = int(3 * width)
    kernel = torch.exp(-torch.arange(-radius, radius + 1.0) ** 2 / (2 * width**2))
    kernel = kernel / kernel.sum()
    c = image.shape[1]
    padded = F.pad(image, (radius,) * 4, mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default="cbsd68:0", help="FOLDER:INDEX in ../shared/data (sorted order)")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--decay", default="none", help="learning-rate factor: none or cos:T")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--wd", type=float, default=0.0, help="decoupled weight decay of the normalised convolutions")
    p.add_argument("--jitter", type=float, default=1 / 30)
    p.add_argument("--jitter-schedule", default="none", help="jitter factor: none, lin:T or cos:T")
    p.add_argument("--ema", type=float, default=0.99)
    p.add_argument("--coarse", type=int, default=0, help="steps on the 2x box-downsampled target first")
    p.add_argument("--code-scale", type=float, default=0.1)
    p.add_argument("--input", default="code", help="code, or blur:W (the target blurred by a Gaussian of width W "
                                                   "in 3 of the 32 input channels)")
    p.add_argument("--ratio", type=float, default=0.25)
    p.add_argument("--shuffle", type=int, default=1, help="the net runs at 1/F of the size with F*F times the "
                                                           "output channels, rearranged by pixel shuffle")
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--neighbour", type=int, default=0,
                   help="restore the right-hand crop of a centre crop of CROP+DX pixels, whose left-hand crop is a "
                        "neighbouring tile of the same noisy image (its noise is the CROP+DX tuning crop's)")
    p.add_argument("--warm", action="store_true",
                   help="with --neighbour: first fit the left-hand tile to its own stop (patience 150), then start "
                        "this crop from those weights (fresh Adam, warm-up again, the same code)")
    p.add_argument("--tv", type=float, default=0.0,
                   help="weight of an isotropic total-variation term of the output in the loss (DIP-TV)")
    p.add_argument("--tag", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(2)

    folder, index = args.image.split(":")
    path = list_images(Path(args.data) / folder)[int(index)]
    name = f"{folder}/{path.stem}"
    clean = load_clean(path, args.crop)
    noisy = make_noisy(clean, name, args.sigma, args.seed)
    neighbour_noisy = None
    if args.neighbour:  # both crops of one noisy image, the same size apart by DX columns
        whole, span = load_clean(path), args.crop + args.neighbour
        noisy_span = make_noisy(load_clean(path, span) if whole.shape[0] >= span else whole, name, args.sigma,
                                args.seed)
        top_span = (noisy_span.shape[0] - args.crop) // 2
        clean = load_clean(path, span)[top_span:top_span + args.crop, args.neighbour:]
        noisy = noisy_span[top_span:top_span + args.crop, args.neighbour:]
        neighbour_noisy = noisy_span[top_span:top_span + args.crop, :args.crop]
    sigma = estimate_sigma(noisy, channel_axis=-1)
    y, x = to_tensor(noisy), to_tensor(clean)
    z = draw_noise(y.shape, args.seed)
    target, validation = y + args.ratio * sigma * z, y - (sigma / args.ratio) * z
    channels, height, width = y.shape[1:]
    run_seed = int(np.random.SeedSequence(args.seed).generate_state(3)[0])  # the engine's seed for a run
    generator = torch.Generator().manual_seed(run_seed)
    torch.manual_seed(run_seed)
    shuffle = args.shuffle
    net = SkipUNet(channels * shuffle**2, NetConfig(depth=args.depth, channels=args.width))
    ph, pw = (shuffle * n for n in padded_size(-(-height // shuffle), -(-width // shuffle), args.depth))
    top, left = (ph - height) // 2, (pw - width) // 2
    code = args.code_scale * torch.rand(1, 32, ph // shuffle, pw // shuffle, generator=generator)
    if args.input.startswith("blur:"):
        blurred = F.pad(gaussian_blur(target, float(args.input[5:])), (left, pw - width - left, top, ph - height - top),
                        mode="replicate")
        code = torch.cat([code[:, :32 - channels], args.code_scale * blurred], 1)
    modules = list(net.modules())
    normalised = {id(m.weight) for m, nxt in zip(modules, modules[1:], strict=False)
                  if isinstance(m, torch.nn.Conv2d) and isinstance(nxt, torch.nn.BatchNorm2d)}
    groups = [{"params": [q for q in net.parameters() if id(q) in normalised], "weight_decay": args.wd},
              {"params": [q for q in net.parameters() if id(q) not in normalised], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2))

    def step(step_index: int, code_now: torch.Tensor, goal: torch.Tensor, h: int, w: int, t: int, lft: int):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step_index + 1) / max(args.warmup, 1)) * schedule(args.decay, step_index)
        jitter = torch.randn(code_now.shape, generator=generator) * args.jitter * schedule(args.jitter_schedule,
                                                                                          step_index)
        out = F.pixel_shuffle(net(code_now + jitter), shuffle)[..., t:t + h, lft:lft + w]
        loss = ((out - goal) ** 2).mean()
        if args.tv:
            loss = loss + args.tv * total_variation(out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return out.detach()

    start = time.perf_counter()
    if args.coarse:
        coarse_target = F.avg_pool2d(target, 2)
        ch, cw = height // 2, width // 2
        cph, cpw = padded_size(ch, cw, 5)
        coarse_code = args.code_scale * torch.rand(1, 32, cph, cpw, generator=generator)
        for i in range(args.coarse):
            step(i, coarse_code, coarse_target, ch, cw, (cph - ch) // 2, (cpw - cw) // 2)
    neighbour_steps = 0
    if args.warm:
        goal_n = to_tensor(neighbour_noisy)
        target_n, validation_n = goal_n + args.ratio * sigma * z, goal_n - (sigma / args.ratio) * z
        ema_n, criteria = None, []
        while True:
            out = step(neighbour_steps, code, target_n, height, width, top, left)
            ema_n = out.clone() if ema_n is None else ema_n.mul_(args.ema).add_(out, alpha=1 - args.ema)
            criteria.append(float(((ema_n - validation_n) ** 2).mean()))
            neighbour_steps += 1
            if len(criteria) - 1 - int(np.argmin(criteria)) >= 150 or neighbour_steps >= args.steps:
                break
        optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2))
        start = time.perf_counter()  # the neighbour's run is its own tile's time, not this one's
    coarse_seconds = time.perf_counter() - start

    rows, ema = [], None
    for i in range(args.steps):
        out = step(args.coarse + i, code, target, height, width, top, left)
        ema = out.clone() if ema is None else ema.mul_(args.ema).add_(out, alpha=1 - args.ema)
        true_psnr = float(10 * torch.log10(1 / ((ema.double() - x.double()) ** 2).mean()))
        rows.append((i + 1, time.perf_counter() - start, true_psnr, float(((ema - validation) ** 2).mean())))
        if i > 400 and i % 50 == 0:
            psnrs, crits = [r[2] for r in rows], [r[3] for r in rows]
            if len(psnrs) - 1 - int(np.argmax(psnrs)) > 300 and len(crits) - 1 - int(np.argmin(crits)) > 160:
                break
    iterations, seconds, psnr, crit = (np.array(c) for c in zip(*rows, strict=True))
    result = {"tag": args.tag, "args": vars(args), "image": name, "sigma_estimated": sigma,
              "neighbour_steps": neighbour_steps,
              "coarse_seconds": coarse_seconds, "ms_per_step": 1000 * (seconds[-1] - coarse_seconds) / len(rows),
              "peak": float(psnr.max()), "peak_iteration": int(iterations[psnr.argmax()]),
              "meta": script_meta("benchmarks/lever_probe.py")}
    for patience in (50, 100, 150):
        best, fired = replay_minimum(crit, patience)
        result[f"stop_p{patience}"] = None if fired is None else {
            "iteration": int(iterations[best]), "psnr": float(psnr[best]), "gap": float(psnr.max() - psnr[best]),
            "fired_seconds": float(seconds[fired])}
    result["curve"] = [(int(i), round(float(s), 2), round(float(q), 3))
                       for i, s, q in zip(iterations[9::10], seconds[9::10], psnr[9::10], strict=True)]
    with open(args.out, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("curve", "args", "meta")}))


if __name__ == "__main__":
    main()
