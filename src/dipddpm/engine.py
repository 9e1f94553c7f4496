"""The training loop: one DIP run that composes a curriculum, stoppers and callbacks.

Per iteration: jitter the fixed input ``u``, one Adam step (learning rate from :func:`learning_rate`)
on the loss between the measured output ``A f`` and the current stage's target, update the EMA of
outputs, let the curriculum and every stopper observe, record the history, call the callbacks. A
non-finite loss or output restores the last good weights and halves the learning rate.

The network produces the image ``f`` (the shape of ``A^T y``, larger than ``y`` for
super-resolution); the training loss is ``sum(w * l(A f, target)) / sum(w)`` with an elementwise
loss ``l`` (squared error by default) and 0/1 weights ``w`` on the measured values (all ones by
default, then exactly ``mean(l)``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .curriculum import Curriculum
from .jitter import JITTERS, InputJitter
from .nets import NetConfig, SkipUNet, padded_size
from .noise_models import squared_error, weighted_mean
from .physics import Identity, Operator, image_shape
from .precision import PRECISIONS, forward_precision
from .priors import total_variation
from .stopping import Observation, Stopper

__all__ = ["RunRecord", "StepInfo", "TrainConfig", "TrainingDiverged", "learning_rate", "run"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one DIP run.

    Attributes
    ----------
    lr : float
        Adam learning rate (after the warm-up).
    lr_warmup : int
        Steps of linear learning-rate warm-up from ``lr / lr_warmup`` to ``lr`` (0: none).
    betas : tuple of float
        Adam's ``(beta1, beta2)``.

    The warm-up matters for a larger rate: every convolution is followed by batch normalisation, so
    only the direction of its weights matters; Adam moves each weight by about ``lr`` per step
    whatever its size, so large early steps inflate the weights, and the angle they then turn per
    step (about ``lr / |w|``) is smaller for the rest of the run. With ``lr = 0.03``,
    ``lr_warmup = 100`` and ``betas = (0.9, 0.99)`` (the ``fast`` preset) the peak comes in about half
    the steps at sigma <= 25 on the tuning crops, but at sigma = 50 it is lower (issue 12,
    ``benchmarks/results/speed/README.md``), so the defaults keep Adam 0.01 without warm-up.
    input_jitter : float
        Standard deviation of the Gaussian jitter added to ``u`` each step ("reg noise").
    jitter : {"window", "fresh"}
        How the jitter is drawn (:class:`~dipddpm.jitter.InputJitter`): a random window of one fixed normal
        field (default: the same distribution at each step, cheaper to draw; on the 256² tuning crops 0.8-0.9x
        the time to the stop at the same PSNR, ``benchmarks/results/speed/README.md``), or a new normal tensor
        each step (the DIP paper's way; the default until the ninth session).
    ema_decay : float
        ``xbar <- d * xbar + (1 - d) * f``.
    output : {"ema", "raw"}
        Which stream the run returns (and stoppers keep).
    max_iter : int
        Upper bound on iterations. The stopper normally ends the run long before; at sigma = 15/255
        on textured images the peak of the default network can come after 3000 iterations.
    snapshot_every : int
        How often the weights are saved for the divergence guard.
    lr_backoff : float
        Factor applied to the learning rate after a non-finite step.
    max_failures : int
        Consecutive non-finite steps after which the run gives up.
    net : NetConfig
        The generator's shape.
    precision : {"auto", "float32", "bfloat16"}
        ``"bfloat16"`` runs the generator's forward pass under bfloat16 autocast (the loss, the output and
        every stopper stay in float32); ``"auto"`` (default) does so where that was measured to be faster, on a
        CPU with native bfloat16 arithmetic (:func:`dipddpm.precision.forward_precision`).
    tv_weight : float
        Weight of the total variation of the output (:func:`dipddpm.priors.total_variation`) added to the
        training loss; 0 (default) adds nothing.
    """

    lr: float = 0.01
    lr_warmup: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    input_jitter: float = 1.0 / 30.0
    jitter: str = "window"
    ema_decay: float = 0.99
    output: str = "ema"
    max_iter: int = 5000
    snapshot_every: int = 50
    lr_backoff: float = 0.5
    max_failures: int = 10
    net: NetConfig = field(default_factory=NetConfig)
    precision: str = "auto"
    tv_weight: float = 0.0

    def __post_init__(self):
        if self.lr <= 0 or self.max_iter < 1 or self.input_jitter < 0 or not 0 <= self.ema_decay < 1:
            raise ValueError("need lr > 0, max_iter >= 1, input_jitter >= 0 and 0 <= ema_decay < 1")
        if self.lr_warmup < 0 or len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError("need lr_warmup >= 0 and two Adam betas in [0, 1)")
        if self.output not in ("ema", "raw"):
            raise ValueError("output must be 'ema' or 'raw'")
        if self.jitter not in JITTERS:
            raise ValueError(f"jitter must be one of {', '.join(JITTERS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if not self.tv_weight >= 0:
            raise ValueError("tv_weight must be >= 0")


@dataclass
class StepInfo:
    """What callbacks receive after each iteration."""

    iteration: int
    max_iter: int
    stage: int
    num_stages: int
    loss: float
    criterion: float | None
    output: torch.Tensor
    net: torch.nn.Module
    stoppers: dict[str, Stopper]


@dataclass
class RunRecord:
    """Outcome of :func:`run`.

    Attributes
    ----------
    output : torch.Tensor
        The iterate chosen by the deciding stopper, shape ``(1, C, H, W)`` of the image (that of
        ``A^T y``).
    stop_iteration : int
        Its iteration.
    stopped_by : str
        Name of the deciding stopper, ``"max-iter"`` when the budget ended the run first, or
        ``"callback"`` when a callback asked to stop.
    iterations_run : int
        Iterations actually trained.
    history : dict of str to list
        Per iteration: ``iteration``, ``stage``, ``loss``, ``lr`` and one column per stopper.
    events : list of str
        Things worth knowing (stage changes, divergence recoveries).
    seconds : float
        Wall time of the loop.
    stage_starts : list of int
        Iteration at which each reached stage began.
    """

    output: torch.Tensor
    stop_iteration: int
    stopped_by: str
    iterations_run: int
    history: dict[str, list]
    events: list[str]
    seconds: float
    stage_starts: list[int]


class TrainingDiverged(RuntimeError):
    """Raised when training keeps producing non-finite values after every recovery."""


def learning_rate(step: int, base: float, warmup: int) -> float:
    """Learning rate of step ``step`` (1-based): ``base * min(1, step / warmup)``; ``base`` when ``warmup == 0``.

    Parameters
    ----------
    step : int
        The step about to be taken, counted from 1.
    base : float
        The rate after the warm-up.
    warmup : int
        Steps of the linear warm-up (0: none).

    Returns
    -------
    float
    """
    if warmup <= 0:
        return base
    return base * min(1.0, step / warmup)


class _Checkpoint:
    """The last good weights and optimiser state, for recovering from a non-finite step."""

    def __init__(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer):
        self.net, self.optimizer = net, optimizer
        self.save(0)

    def save(self, iteration: int) -> None:
        self.iteration = iteration
        self.state = (copy.deepcopy(self.net.state_dict()), copy.deepcopy(self.optimizer.state_dict()))

    def restore(self) -> None:
        """Reload the saved weights and optimiser state."""
        self.net.load_state_dict(self.state[0])
        self.optimizer.load_state_dict(self.state[1])


def memory_format(device: torch.device) -> torch.memory_format:
    """The layout the generator's weights and input are kept in on ``device``.

    ``torch.channels_last`` on a CPU, where oneDNN's convolutions then skip a reorder of every activation
    in both passes: a bare training step of the default network took 0.87x the time at 144² (depth 4, one
    thread) and 0.89x at 128² (depth 5), bfloat16 forward; with the fused Adam of :func:`make_optimizer` a whole
    run on a 256² crop took 0.87x (median of four crops at sigma = 25; 0.81-0.91x at sigma = 15 and 50, the same
    PSNR; ``benchmarks/results/speed/README.md``, eighth session). ``torch.contiguous_format`` elsewhere (CUDA:
    not measured).

    Parameters
    ----------
    device : torch.device
        Where the network runs.

    Returns
    -------
    torch.memory_format
    """
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def make_optimizer(parameters, config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with ``config``'s rate and betas, as one fused kernel where torch has it (CPU and CUDA).

    The fused update is the same algorithm as the per-tensor loop (equal up to rounding); with the
    channels-last layout it took 0.93x the step time at 128² and 0.98x at 144² on the CPU (one thread).

    Parameters
    ----------
    parameters : iterable of torch.nn.Parameter
        The generator's parameters.
    config : TrainConfig
        Supplies ``lr`` and ``betas``.
    device : torch.device
        Where the parameters live.

    Returns
    -------
    torch.optim.Adam
    """
    fused = device.type in ("cpu", "cuda") or None
    return torch.optim.Adam(parameters, lr=config.lr, betas=tuple(config.betas), fused=fused)


def _crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (image.shape[-2] - height) // 2
    left = (image.shape[-1] - width) // 2
    return image[..., top:top + height, left:left + width]


def run(curriculum: Curriculum, stoppers: dict[str, Stopper], deciding: str, config: TrainConfig,
        seed: int = 0, callbacks: tuple[Callable[[StepInfo], None], ...] = (), *, physics: Operator | None = None,
        pixel_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        train_weights: torch.Tensor | None = None) -> RunRecord:
    """Train one DIP generator through the curriculum until the deciding stopper fires.

    Parameters
    ----------
    curriculum : Curriculum
        Targets and stage transitions (holds ``y`` and ``z``, in measurement space).
    stoppers : dict of str to Stopper
        All stoppers that watch the run.
    deciding : str
        Key of the stopper that ends the run; it returns its chosen iterate.
    config : TrainConfig
        Optimisation settings.
    seed : int
        Seeds the network's initialisation, the input ``u`` and the jitter.
    callbacks : tuple of callables
        Each is called with a :class:`StepInfo` after every iteration; a callback that returns
        True ends the run (the deciding stopper's iterate is still returned).
    physics : Operator, optional
        The forward operator ``A`` that produced ``y`` (default: identity, i.e. denoising).
    pixel_loss : callable, optional
        Elementwise loss ``l(prediction, observation)`` -> a tensor of per-value losses (default:
        squared error).
    train_weights : torch.Tensor, optional
        0/1 weights of the measured values that train the network, shape of ``y`` (default: all).

    Returns
    -------
    RunRecord
    """
    if deciding not in stoppers:
        raise ValueError(f"the deciding stopper {deciding!r} is not among the stoppers")
    y = curriculum.observation
    device = y.device
    physics = physics or Identity()
    pixel_loss = pixel_loss or squared_error
    if train_weights is not None and (train_weights.shape != y.shape or not bool(train_weights.sum() > 0)):
        raise ValueError("train_weights need the observation's shape and a positive sum")
    _, channels, height, width = image_shape(physics, y.shape, device)
    ph, pw = padded_size(height, width, config.net.depth)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    layout = memory_format(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SkipUNet(channels, config.net).to(device, memory_format=layout)
    code = 0.1 * torch.rand(1, config.net.input_channels, ph, pw, generator=generator)
    code = code.to(device, memory_format=layout)
    # the jitter is drawn where the network runs: no host-to-device copy per step on a GPU
    jitter = InputJitter(code.shape, config.input_jitter, config.jitter,
                         generator if device.type == "cpu" else torch.Generator(device=device).manual_seed(seed),
                         device, layout)
    bfloat16 = forward_precision(config.precision, device) == "bfloat16"
    optimizer = make_optimizer(net.parameters(), config, device)
    checkpoint = _Checkpoint(net, optimizer)

    history: dict[str, list] = {"iteration": [], "stage": [], "loss": [], "lr": []}
    history.update({name: [] for name in stoppers})
    events: list[str] = []
    stage_starts = [0]
    ema: torch.Tensor | None = None
    failures = 0
    lr_scale = 1.0  # lowered by the divergence guard
    iteration = 0
    stopped_by = "max-iter"
    start = time.perf_counter()
    while iteration < config.max_iter:
        lr = lr_scale * learning_rate(iteration + 1, config.lr, config.lr_warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
            raw = _crop(net(code + jitter.draw()), height, width).float().contiguous()
        loss = weighted_mean(pixel_loss(physics.A(raw), curriculum.target), train_weights)
        loss_value = float(loss.detach())  # the data term: what the stage rule compares with a noise floor
        if config.tv_weight:
            loss = loss + config.tv_weight * total_variation(raw)
        if not math.isfinite(loss_value):
            failures += 1
            if failures > config.max_failures:
                raise TrainingDiverged(f"training diverged: {failures} non-finite steps in a row")
            checkpoint.restore()
            lr_scale *= config.lr_backoff
            lr *= config.lr_backoff  # the same step is retried at the lowered rate
            events.append(f"iteration {iteration + 1}: non-finite loss; restored the weights of iteration "
                          f"{checkpoint.iteration}, lr -> {lr:.3g}")
            continue
        failures = 0
        loss.backward()
        optimizer.step()
        iteration += 1
        raw = raw.detach()
        ema = raw.clone() if ema is None else ema.mul_(config.ema_decay).add_(raw, alpha=1.0 - config.ema_decay)
        stage = curriculum.stage
        final_stage = curriculum.is_final
        if curriculum.update(loss_value):
            stage_starts.append(iteration)
            events.append(f"iteration {iteration}: stage {curriculum.stage + 1}/{len(curriculum.stages)} "
                          f"(s = {curriculum.stages[curriculum.stage].scale:.4g})")
        output = ema if config.output == "ema" else raw
        with torch.no_grad():
            measured = physics.A(output)
        obs = Observation(iteration=iteration, output=output, raw=raw, stage=stage, final_stage=final_stage,
                          schedule_finished=curriculum.finished, measured=measured)
        fired = {name: s.observe(obs) for name, s in stoppers.items()}
        history["iteration"].append(iteration)
        history["stage"].append(stage)
        history["loss"].append(loss_value)
        history["lr"].append(optimizer.param_groups[0]["lr"])
        for name, s in stoppers.items():
            history[name].append(s.value)
        if iteration % config.snapshot_every == 0:
            checkpoint.save(iteration)
        info = StepInfo(iteration, config.max_iter, stage, len(curriculum.stages), loss_value,
                        stoppers[deciding].value, obs.output, net, stoppers)
        asked = [callback(info) for callback in callbacks]
        if fired[deciding]:
            stopped_by = deciding
            break
        if any(asked):
            stopped_by = "callback"
            break
    chosen = stoppers[deciding]
    if chosen.best_output is None:
        raise TrainingDiverged("the run ended before the deciding stopper saw a valid iterate")
    return RunRecord(output=chosen.best_output, stop_iteration=chosen.best_iteration, stopped_by=stopped_by,
                     iterations_run=iteration, history=history, events=events,
                     seconds=time.perf_counter() - start, stage_starts=stage_starts)
