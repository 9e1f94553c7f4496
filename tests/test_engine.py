import math

import pytest
import torch

from dipddpm.curriculum import Curriculum, NoiseFloorRule, geometric_stages, plain_stages
from dipddpm.engine import TrainConfig, TrainingDiverged, learning_rate, make_optimizer, memory_format, run
from dipddpm.nets import NetConfig, SkipUNet
from dipddpm.noise_models import absolute_error
from dipddpm.physics import Downsample
from dipddpm.stopping import FixedStopper, OracleStopper, RecorruptionStopper

SMALL = NetConfig(channels=8, depth=3, input_channels=8)


def _setup(seed=0, shape=(1, 3, 20, 28)):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    y = (x + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    z = torch.randn(shape, generator=g)
    stages = geometric_stages(0.1, 2, 3.0, 0.5)
    return x, y, z, Curriculum(y, z, stages, 0.1, NoiseFloorRule(min_iter=5, max_iter=10))


def _run(seed=0, max_iter=25, callbacks=(), **stopper_kw):
    x, y, z, cur = _setup()
    stoppers = {"fixed": FixedStopper(stopper_kw.get("fixed", 1000)), "oracle": OracleStopper(x),
                "recorruption": RecorruptionStopper(y, z, 0.1, 0.5, patience=5)}
    cfg = TrainConfig(max_iter=max_iter, net=SMALL, snapshot_every=5)
    return run(cur, stoppers, "fixed", cfg, seed=seed, callbacks=callbacks), stoppers


def test_seeded_runs_repeat_exactly_on_cpu():
    a, _ = _run(seed=3)
    b, _ = _run(seed=3)
    c, _ = _run(seed=4)
    assert torch.equal(a.output, b.output)
    assert a.history["loss"] == b.history["loss"]
    assert not torch.equal(a.output, c.output)


def test_history_and_callbacks_cover_every_iteration():
    seen = []
    record, stoppers = _run(max_iter=12, callbacks=(lambda info: seen.append(info.iteration),))
    assert seen == list(range(1, 13))
    assert record.history["iteration"] == seen
    assert set(record.history) >= {"loss", "stage", "lr", "fixed", "oracle", "recorruption"}
    assert all(len(v) == 12 for v in record.history.values())
    assert record.stopped_by == "max-iter" and record.iterations_run == 12


def test_the_deciding_stopper_ends_the_run_and_returns_its_iterate():
    record, stoppers = _run(max_iter=100, fixed=7)
    assert record.stopped_by == "fixed" and record.iterations_run == 7 and record.stop_iteration == 7
    assert torch.equal(record.output, stoppers["fixed"].best_output)


def test_stages_are_recorded_in_order():
    record, _ = _run(max_iter=40)
    stages = record.history["stage"]
    assert stages[0] == 0 and max(stages) == 1
    assert all(b >= a for a, b in zip(stages, stages[1:], strict=False))
    assert record.stage_starts == [0, stages.index(1)]


def test_non_finite_steps_restore_weights_and_lower_the_learning_rate():
    poisoned = []

    def poison(info):
        if info.iteration == 8 and not poisoned:
            poisoned.append(True)
            with torch.no_grad():
                next(info.net.parameters()).fill_(math.nan)

    record, _ = _run(max_iter=20, callbacks=(poison,))
    assert record.iterations_run == 20
    assert any("non-finite" in e and "weights of iteration 5," in e for e in record.events)
    defaults = TrainConfig()
    assert record.history["lr"][-1] == pytest.approx(0.5 * learning_rate(20, defaults.lr, defaults.lr_warmup))
    assert torch.isfinite(record.output).all()
    assert all(math.isfinite(v) for v in record.history["loss"])


def test_persistent_divergence_raises(monkeypatch):
    def nan_forward(self, u):
        return torch.full((1, 3, u.shape[-2], u.shape[-1]), math.nan)

    monkeypatch.setattr(SkipUNet, "forward", nan_forward)
    x, y, z, cur = _setup()
    cfg = TrainConfig(max_iter=30, net=SMALL, max_failures=3)
    with pytest.raises(TrainingDiverged, match="4 non-finite steps"):
        run(cur, {"fixed": FixedStopper(100)}, "fixed", cfg)


def test_bad_train_config():
    with pytest.raises(ValueError):
        TrainConfig(lr=0)
    with pytest.raises(ValueError):
        TrainConfig(output="median")
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="float16")
    x, y, z, cur = _setup()
    with pytest.raises(ValueError):
        run(cur, {"fixed": FixedStopper(3)}, "oracle", TrainConfig(max_iter=3, net=SMALL))


def test_a_callback_can_end_the_run():
    record, _ = _run(max_iter=50, callbacks=(lambda info: info.iteration >= 9,))
    assert record.stopped_by == "callback" and record.iterations_run == 9


class _Shapes(FixedStopper):
    """A fixed stop that records the shapes it was shown."""

    def _update(self, obs):
        self.shapes = (tuple(obs.output.shape), tuple(obs.measured.shape))
        return super()._update(obs)


def test_the_network_produces_the_image_behind_the_measurement():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 3, 8, 6, generator=g)
    cur = Curriculum(y, torch.zeros_like(y), plain_stages(), 0.0, NoiseFloorRule())
    watcher = _Shapes(4)
    record = run(cur, {"fixed": watcher}, "fixed", TrainConfig(max_iter=10, net=SMALL), physics=Downsample(2))
    assert record.output.shape == (1, 3, 16, 12) and record.iterations_run == 4
    assert watcher.shapes == ((1, 3, 16, 12), (1, 3, 8, 6))


def test_values_with_zero_training_weight_never_reach_the_network():
    x, y, z, _ = _setup()
    weights = (torch.rand(y.shape, generator=torch.Generator().manual_seed(9)) > 0.3).float()
    cfg = TrainConfig(max_iter=6, net=SMALL)

    def trained(observation, train_weights):
        cur = Curriculum(observation, z, plain_stages(), 0.0, NoiseFloorRule())
        return run(cur, {"fixed": FixedStopper(6)}, "fixed", cfg, pixel_loss=absolute_error,
                   train_weights=train_weights)

    changed = y + 0.5 * (1 - weights)
    a, b = trained(y, weights), trained(changed, weights)
    assert torch.equal(a.output, b.output) and a.history["loss"] == b.history["loss"]
    assert not torch.equal(a.output, trained(changed, None).output)
    with pytest.raises(ValueError, match="train_weights"):
        trained(y, torch.zeros_like(y))


@pytest.mark.parametrize("step, warmup, expected", [(1, 0, 0.02), (7, 0, 0.02), (1, 4, 0.005), (2, 4, 0.01),
                                                    (4, 4, 0.02), (50, 4, 0.02)])
def test_learning_rate_rises_linearly_then_stays(step, warmup, expected):
    assert learning_rate(step, 0.02, warmup) == pytest.approx(expected)


def test_the_warm_up_reaches_the_optimiser():
    x, y, z, cur = _setup()
    cfg = TrainConfig(max_iter=6, net=SMALL, lr=0.02, lr_warmup=4, betas=(0.8, 0.99))
    record = run(cur, {"fixed": FixedStopper(100)}, "fixed", cfg)
    assert record.history["lr"] == pytest.approx([0.005, 0.01, 0.015, 0.02, 0.02, 0.02])


@pytest.mark.parametrize("kwargs", [{"lr_warmup": -1}, {"betas": (0.9, 1.0)},
                                    {"betas": (0.9,)}])
def test_bad_optimiser_settings(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_bfloat16_autocast_runs_the_forward_pass_only_in_low_precision():
    x, y, z, cur = _setup()
    oracle = OracleStopper(x)
    record = run(cur, {"fixed": FixedStopper(8), "oracle": oracle}, "fixed",
                 TrainConfig(max_iter=8, net=SMALL, precision="bfloat16"))
    assert record.output.dtype == torch.float32 and torch.isfinite(record.output).all()
    assert all(math.isfinite(v) for v in record.history["loss"])
    x, y, z, cur = _setup()
    full = run(cur, {"fixed": FixedStopper(8)}, "fixed", TrainConfig(max_iter=8, net=SMALL, precision="float32"))
    assert not torch.equal(record.output, full.output)  # the precision reaches the network


def test_on_a_cpu_the_network_runs_channels_last_with_a_fused_adam_and_returns_a_plain_tensor():
    cpu = torch.device("cpu")
    assert memory_format(cpu) == torch.channels_last
    assert memory_format(torch.device("meta")) == torch.contiguous_format
    optimizer = make_optimizer([torch.zeros(3, requires_grad=True)], TrainConfig(), cpu)
    assert optimizer.defaults["fused"] is True
    nets = []
    record, _ = _run(max_iter=6, callbacks=(lambda info: nets.append(info.net),))
    weight = next(p for p in nets[-1].parameters() if p.dim() == 4 and p.shape[-1] == 3)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert record.output.is_contiguous()


def test_the_channels_last_layout_computes_the_same_function():
    torch.manual_seed(0)
    net = SkipUNet(3, SMALL)
    u = torch.rand(1, SMALL.input_channels, 32, 32)
    plain = net(u)
    net = net.to(memory_format=torch.channels_last)
    assert torch.allclose(net(u.contiguous(memory_format=torch.channels_last)), plain, atol=1e-5)
