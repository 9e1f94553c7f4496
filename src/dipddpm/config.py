"""Settings of a restoration: the curriculum, the stoppers and the training loop, as plain dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .engine import TrainConfig
from .schedule import SCHEDULES

__all__ = ["TRANSITION_RULES", "DenoiserConfig", "HighNoisePrior", "LowNoiseOptimiser", "StagingConfig",
           "StoppingConfig", "TileSettings"]

TRANSITION_RULES = ("noise-floor", "fixed", "seed", "seed-corrected")


@dataclass(frozen=True)
class StagingConfig:
    """How the staged targets are chosen and when stages change.

    Defaults (chosen on the tuning set, seed 0; see ``benchmarks/results/tuning/``): one stage and
    ``a = 0.25``. More stages never raised PSNR there (K = 1 >= 3 >= 5 at sigma 15, 25 and 50), and
    ``a = 0.25`` beat ``a = 0.5`` by 0.3-0.4 dB at every sigma while keeping the stop reliable;
    ``a = 0.125`` was 0.03-0.08 dB better on average but stopped less reliably (largest gap to the
    oracle 0.49 dB against 0.37 dB), and ``a = 0.0625`` was worse on both counts.

    Attributes
    ----------
    num_stages : int
        ``K``, including the final stage ``y + a sigma z``. 1 means no staging.
    s_max_factor : float
        ``s_1 / sigma`` of geometric stages.
    ratio : float
        ``a``: the final stage trains on ``y + a sigma z`` and validates on ``y - (sigma / a) z``.
        0 trains the final stage on ``y`` itself (plain DIP; no recorruption stopper).
    timesteps : tuple of int
        If given, the non-final stages sit at these DDPM timesteps instead of geometric scales.
    schedule : str
        DDPM beta schedule (for ``timesteps`` and the seed's budget formula).
    rule : str
        Stage transitions: ``noise-floor`` (default), ``fixed`` (``budgets``), ``seed`` (the seed's
        ``E(i)`` as written) or ``seed-corrected``.
    delta : float
        Margin of the noise-floor rule.
    min_iter, max_iter : int
        Bounds of a non-final stage under the noise-floor rule; ``max_iter`` is also the final
        stage's budget for the ``schedule-end`` stopper.
    budgets : tuple of int
        Iterations per stage for the ``fixed`` rule (one per stage).
    seed_e_max, seed_a, seed_k : float
        ``E_max``, ``a`` and ``k`` of the seed's formula.
    """

    num_stages: int = 1
    s_max_factor: float = 4.0
    ratio: float = 0.25
    timesteps: tuple[int, ...] = ()
    schedule: str = "linear"
    rule: str = "noise-floor"
    delta: float = 0.02
    min_iter: int = 50
    max_iter: int = 500
    budgets: tuple[int, ...] = ()
    seed_e_max: int = 1000
    seed_a: float = 0.5
    seed_k: float = 3.0

    def __post_init__(self):
        if self.num_stages < 1:
            raise ValueError("num_stages must be at least 1")
        if self.ratio < 0:
            raise ValueError("the validation ratio a must be non-negative (0: plain DIP on y)")
        if self.rule not in TRANSITION_RULES:
            raise ValueError(f"unknown stage rule {self.rule!r}; choose one of {', '.join(TRANSITION_RULES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0 < self.min_iter <= self.max_iter:
            raise ValueError("need 0 < min_iter <= max_iter")


@dataclass(frozen=True)
class StoppingConfig:
    """Parameters of the stoppers.

    Attributes
    ----------
    patience : int
        Recorruption and held-out stoppers: iterations without a new validation minimum. 150:
        replayed on the tuning runs (seed 0, ``benchmarks/replay_patience.py``), every value from 150
        to 300 returns the same iterates at sigma 25 and 50 and the same mean PSNR at sigma 15, and
        150 ends the run 150 iterations sooner than 300 (measured for recorruption only).
    holdout : float
        Held-out stopper: the fraction of the measured values kept out of training to validate on.
    wmv_window, wmv_patience : int
        ES-WMV's window ``W`` and patience ``P``: 100 and 1000, the authors' ``buffer_size`` and ``patience``
        (``sun-umn/Early_Stopping_for_DIP``, ``ES_WMV.ipynb``, lines 98-99 of the notebook file).
    emv_alpha, emv_patience, emv_burn_in
        ES-EMV's smoothing factor ``alpha``, patience ``P`` and burn-in (observations that only feed the
        moving mean and variance, :class:`~dipddpm.stopping.ExponentialVarianceStopper`): 0.1, 1000 and 101,
        the authors' ``alpha``, ``patience`` (``ES_EMV.ipynb``, lines 98-100) and their check
        ``if iterator > 100`` on a 0-based iterator (lines 276-280), which first counts the 102nd output.
    discrepancy_tau : float
        Discrepancy stopper: stop when ``||xbar - y||^2 / N <= tau sigma^2``.
    fixed_iterations : int
        The ``fixed`` stopper's iteration count.
    delay : float
        Recorruption and held-out stoppers: return the iterate ``round(delay t*)`` iterations after the
        validation minimum ``t*`` instead of the minimum (the run goes on until both the patience has passed and
        that iterate was reached). 0 for a single run: the minimum is its best estimate.
    ensemble_delay : float
        The ``delay`` of each member of an ensemble of two or more (:func:`dipddpm.restore.ensemble_members`):
        an average of members can afford later, less smoothed members than one run alone. 0.15: chosen on the
        tuning crops (seed 0) at sigma 25 among 0.05-0.3 (at sigma 50 the best fixed delay there, 50 iterations,
        is 0.1-0.2 of the minimum's iteration), confirmed on the report crops (seed 1) at sigma 15, 25 and 50
        (``benchmarks/ensemble_stop_probe.py``; ``benchmarks/results/ensemble/README.md``).
    clip_aware_sigma_min : float
        Recorruption stopper of a single run on a clipped image (values on 0 or 1, plain Gaussian denoising) at a
        sigma above this: validate on ``y - c z`` with ``c = v(x_hat) / (a sigma)``, ``v`` the clipped noise's
        variance at the pilot's estimate (:func:`dipddpm.stopping.validation_scale`), whose noise is uncorrelated
        with the training noise; the plain ``c = sigma / a`` is negatively correlated with it near black and white,
        which brings the validation minimum early. ``0``: at every sigma; ``math.inf``: never. Measured on single
        runs (thirteenth session, 128 px crops, ``benchmarks/clip_aware_probe.py``): +0.06 / +0.07 dB at sigma 50
        with sigma given (8 tuning crops seed 0 / 8 report crops seed 1), +0.08 / +0.07 dB with sigma estimated;
        at sigma 15 and 25 the same result to 0.02 dB, but a more optimistic PSNR estimate at 25 (the plain copy's
        correlation had hidden part of an optimistic error of the offset, ``docs/method.md`` 4e). Hence 35/255,
        the level above which a clipped image's estimate is withheld anyway
        (:data:`dipddpm.restore.ESTIMATE_CLIPPED_SIGMA_MAX`). Members of an ensemble keep the plain copy, with
        which ``ensemble_delay`` was chosen (with the clip-aware copy and that delay 4 runs lost 0.03 dB at sigma
        50, report crops seed 1, ``benchmarks/results/clip-aware/README.md``).
    split_colour : bool
        Recorruption stopper of an RGB image (plain Gaussian denoising): return each opponent colour component
        (luminance, two chrominances; :mod:`dipddpm.colour`) at its own validation minimum over the iterations run
        (:class:`~dipddpm.stopping.ComponentMinima`; the run ends where it would without the split); with a
        reference the oracle is then the best per component too. Chrominance is best early (median iteration
        about 450 at sigma 15 and 25), luminance later (about 1050): on single runs (fourteenth session, 128 px
        crops, fits before declipping, ``benchmarks/colour_stop_probe.py``) +0.44 / +0.29 / +0.25 dB at sigma 15 /
        25 / 50 on the tuning crops (seed 0), +0.38 / +0.33 / +0.25 dB on the report crops (seed 1), in the same
        iterations. Letting each component run out its own patience gained another +0.08 / +0.11 / +0.02 dB (seed
        1) for 1.2-1.3x the iterations: not taken.
    """

    patience: int = 150
    holdout: float = 0.1
    wmv_window: int = 100
    wmv_patience: int = 1000
    emv_alpha: float = 0.1
    emv_patience: int = 1000
    emv_burn_in: int = 101
    discrepancy_tau: float = 1.0
    fixed_iterations: int = 1800
    delay: float = 0.0
    ensemble_delay: float = 0.15
    clip_aware_sigma_min: float = 35.0 / 255.0
    split_colour: bool = True


@dataclass(frozen=True)
class LowNoiseOptimiser:
    """The optimiser of Gaussian denoising at low noise: Adam ``lr`` after ``lr_warmup`` steps, ``betas``.

    It replaces the run's optimiser settings when the noise level used (given or estimated) is at
    most ``sigma_max``. Chosen on the 128² tuning crops (seed 0) and confirmed on the report crops
    (seed 1), against Adam 0.01 without warm-up (issue 12, ``benchmarks/results/speed/README.md``):
    at sigma = 15 it stops in about half the iterations and no lower (+0.11 dB on seed 0, +0.05 dB on
    seed 1); at sigma = 20 it was mixed (the four Kodak crops -0.07 dB on average, the smooth kodim04
    -0.32 dB), at sigma = 25 it loses 0.08-0.16 dB for a third fewer iterations, and at sigma = 50
    0.7 dB (the warm-up is what costs there, ``docs/method.md`` 4b). Hence a threshold of 18/255:
    above the estimates at sigma = 15 (15.1-17.2 on those crops), below 20.

    The tiles of a tiled run (:func:`dipddpm.api.plan_tiling`: a large image at moderate noise on a CPU) get
    it up to ``tile_sigma_max`` (:meth:`in_tiles`): on eight 256² crops at sigma = 25 (seeds 0 and 1, 144²
    tiles) it took half the time (median) for +0.02 dB on average, -0.37 dB at worst on the smooth kodim04
    (issue 12, ``benchmarks/results/speed/README.md``, "The fast optimiser in tiles"). 28/255 lies above
    the estimates at sigma = 25 (25.1-26.4), below 30.

    Attributes
    ----------
    sigma_max : float
        Largest noise level (image units) that gets this optimiser.
    tile_sigma_max : float
        The same for the tiles of a tiled run.
    lr, lr_warmup, betas
        As in :class:`~dipddpm.engine.TrainConfig`.
    """

    sigma_max: float = 18.0 / 255.0
    tile_sigma_max: float = 28.0 / 255.0
    lr: float = 0.03
    lr_warmup: int = 100
    betas: tuple[float, float] = (0.9, 0.99)

    def train_for(self, train: TrainConfig, sigma: float | None) -> TrainConfig:
        """``train`` with this optimiser when ``sigma <= sigma_max``; unchanged otherwise or without sigma.

        Parameters
        ----------
        train : TrainConfig
        sigma : float or None
            The noise level the run uses (image units).

        Returns
        -------
        TrainConfig
        """
        if sigma is None or sigma > self.sigma_max:
            return train
        return replace(train, lr=self.lr, lr_warmup=self.lr_warmup, betas=self.betas)

    def in_tiles(self) -> LowNoiseOptimiser:
        """This rule for the tiles of a tiled run: ``sigma_max`` raised to ``tile_sigma_max``."""
        return replace(self, sigma_max=max(self.sigma_max, self.tile_sigma_max))


@dataclass(frozen=True)
class HighNoisePrior:
    """A total-variation term in the loss of Gaussian denoising at high noise (``TrainConfig.tv_weight``).

    It is added when the noise level used (given or estimated) is above ``sigma_min``. Probed on the four 128²
    tuning crops at sigma = 25 and 50 (seed 0, ``benchmarks/results/tuning/README.md``, "A total-variation term"):
    at 25 nothing beyond the run-to-run spread, at 50 weight 0.01 better on all four. Through the package at
    sigma = 50 (128² crops, declipped): +0.18 dB on average on the four tuning crops (seed 0), +0.15 dB on the
    eight report crops of seed 1 (better on 6/8, -0.14 at worst) and of seed 2 (7/8, -0.12 at worst); smooth
    images gain most (up to +0.54). The threshold is the tiling threshold (35/255); between 25 and 50 the gain on
    the tuning crops grows with sigma: +0.03 dB at 30 (within the spread), +0.09 at 40. Weight 0.02 gained more
    on average at 40 and 50 (+0.06 to +0.19) but lost up to 0.21 dB on textured crops; not taken.

    Attributes
    ----------
    sigma_min : float
        Noise levels (image units) above this get the term.
    tv_weight : float
        Its weight.
    """

    sigma_min: float = 35.0 / 255.0
    tv_weight: float = 0.01

    def train_for(self, train: TrainConfig, sigma: float | None) -> TrainConfig:
        """``train`` with this term when ``sigma > sigma_min``; unchanged otherwise or without sigma.

        Parameters
        ----------
        train : TrainConfig
        sigma : float or None
            The noise level the run uses (image units).

        Returns
        -------
        TrainConfig
        """
        if sigma is None or sigma <= self.sigma_min:
            return train
        return replace(train, tv_weight=self.tv_weight)


def _positive_or_none(value, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be None (the run's own) or a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class TileSettings:
    """What each tile of a tiled run changes from the run's settings (:meth:`DenoiserConfig.for_tiles`).

    A tile is a small image (144 px or a little more when tiling for time, ``dipddpm.tiling.time_tile``), and
    two things pay there (issue 12, ``benchmarks/results/speed/README.md``, "A shallower network in the tiles"
    and "Patience 50 in the tiles"):

    Attributes
    ----------
    max_depth : int or None
        Cap on the depth of a tile's network (None: the run's). At depth 4 a 144² tile runs as it is, where
        depth 5 pads it to 160² (a multiple of 32): on eight 256² crops at sigma = 25 the tiles took 0.76x the
        time for 0.08 dB less on average (-0.29 at worst, the smooth kodim04); at sigma = 15 (two crops) 0.65x
        for -0.14 dB. A 152² tile (512² images) is padded to 160² either way and gains little.
    patience : int or None
        Cap on the stoppers' patience in a tile (None: the run's). With 50 instead of 150 every one of 20
        tiles of five 256² crops at sigma = 25 returned the same iterate, 0.83-0.87x the time.
    """

    max_depth: int | None = 4
    patience: int | None = 50

    def __post_init__(self):
        _positive_or_none(self.max_depth, "max_depth")
        _positive_or_none(self.patience, "patience")

    def apply(self, config: DenoiserConfig) -> DenoiserConfig:
        """``config`` with its network at most ``max_depth`` deep and its patience at most ``patience``."""
        net, stopping = config.train.net, config.stopping
        if self.max_depth is not None and net.depth > self.max_depth:
            config = replace(config, train=replace(config.train, net=replace(net, depth=self.max_depth)))
        if self.patience is not None and stopping.patience > self.patience:
            config = replace(config, stopping=replace(stopping, patience=self.patience))
        return config


@dataclass(frozen=True)
class DenoiserConfig:
    """Everything that defines a restoration run except the image, sigma and seed.

    ``low_noise`` (None: never) switches plain Gaussian denoising at low noise to a faster optimiser and
    ``high_noise`` (None: never) adds a total-variation term to its loss at high noise; :meth:`train_for` gives
    the training settings a run with a given sigma uses. ``ensemble`` is the
    number of runs averaged (:mod:`dipddpm.ensemble`: antithetic pairs ``z``, ``-z``, each run with its
    own initialisation and its own stop); 1 is a single run. ``declip`` maps the result of plain Gaussian
    denoising of a clipped image (values at exactly 0 or 1) through the inverse of the clipped mean
    (:func:`dipddpm.restore.declipped`): the fit estimates ``E clip(x + n)``, biased near black and white.
    ``workers`` is how many local processes restore the independent runs of one image (tiles, ensemble
    members) at once, each with ``cores // workers`` torch threads (:func:`dipddpm.executors.runs_at_once`):
    None gives one per core on a CPU and one on a GPU; 1 (the default of the Python API) runs them one after
    another in this process. Worker processes are spawned: they import the calling script again, so a
    script that sets ``workers`` must keep its work under ``if __name__ == "__main__":``. The command line
    (``--workers``, default auto) is safe. ``tiles`` is what each tile of a tiled run changes
    (:class:`TileSettings`, :meth:`for_tiles`; None: nothing).
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    staging: StagingConfig = field(default_factory=StagingConfig)
    stopping: StoppingConfig = field(default_factory=StoppingConfig)
    low_noise: LowNoiseOptimiser | None = field(default_factory=LowNoiseOptimiser)
    high_noise: HighNoisePrior | None = field(default_factory=HighNoisePrior)
    ensemble: int = 1
    declip: bool = True
    workers: int | None = 1
    tiles: TileSettings | None = field(default_factory=lambda: TileSettings())

    def __post_init__(self):
        if isinstance(self.ensemble, bool) or not isinstance(self.ensemble, int) or self.ensemble < 1:
            raise ValueError(f"ensemble must be a whole number of runs >= 1, got {self.ensemble!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise ValueError(f"workers must be None (one per core) or a whole number >= 1, got {self.workers!r}")

    def train_for(self, sigma: float | None) -> TrainConfig:
        """The training settings of a Gaussian denoising run at noise level ``sigma`` (see ``low_noise`` and
        ``high_noise``)."""
        train = self.train if self.low_noise is None else self.low_noise.train_for(self.train, sigma)
        return train if self.high_noise is None else self.high_noise.train_for(train, sigma)

    def for_tiles(self) -> DenoiserConfig:
        """The settings of each tile of a tiled run: ``low_noise`` as :meth:`LowNoiseOptimiser.in_tiles`, then
        ``tiles`` (:meth:`TileSettings.apply`)."""
        tiled = self if self.low_noise is None else replace(self, low_noise=self.low_noise.in_tiles())
        return tiled if self.tiles is None else self.tiles.apply(tiled)

    def to_dict(self) -> dict:
        """Nested plain dictionary (JSON-ready)."""
        return asdict(self)
