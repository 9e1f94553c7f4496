import numpy as np
import pytest
import torch

from dipddpm.errors import InputError
from dipddpm.noise_models import expected_anscombe
from dipddpm.physics import (
    AnscombeStabilised,
    Downsample,
    Identity,
    PixelMask,
    describe,
    from_deepinv,
    observed_weights,
)

SHAPE = (2, 3, 12, 12)


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class FakePhysics:
    """Duck-typed deepinv physics: a 2x2 column-sum (``A``) and its adjoint (``A_adjoint``)."""

    def A(self, x):
        return x[..., 0::2, :] + x[..., 1::2, :]

    def A_adjoint(self, y):
        return y.repeat_interleave(2, dim=-2)


OPERATORS = {
    "identity": Identity(),
    "mask-hw": PixelMask(_rand(12, 12, seed=1) > 0.5),
    "mask-chw": PixelMask((_rand(3, 12, 12, seed=2) > 0.3).double()),
    "mask-1hw": PixelMask((_rand(1, 12, 12, seed=3) > 0.7).float()),
    "downsample-2": Downsample(2),
    "downsample-3": Downsample(3),
    "downsample-4": Downsample(4),
    "deepinv": from_deepinv(FakePhysics()),
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_adjoint_identity_and_measured_shape(name):
    op = OPERATORS[name]
    x = _rand(*SHAPE, seed=4) - 0.5
    measured = op.measured_shape(SHAPE)
    assert tuple(op.A(x).shape) == measured
    y = _rand(*measured, seed=5) - 0.5
    lhs, rhs = torch.sum(op.A(x) * y), torch.sum(x * op.A_adjoint(y))
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-12, abs=1e-12)
    assert op.A(x).dtype == torch.float64


def test_pixel_mask_keeps_masked_pixels_and_is_idempotent():
    mask = _rand(12, 12, seed=1) > 0.5
    op, x = PixelMask(mask), _rand(*SHAPE) + 1.0
    once = op.A(x)
    assert torch.equal(op.A(once), once)
    assert torch.equal(once[:, :, mask], x[:, :, mask]) and torch.all(once[:, :, ~mask] == 0)


def test_downsample_averages_blocks_and_keeps_constants():
    op = Downsample(4)
    assert torch.allclose(op.A(torch.full(SHAPE, 0.37, dtype=torch.float64)), torch.full((2, 3, 3, 3), 0.37,
                                                                                      dtype=torch.float64))
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(Downsample(2).A(x), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    y = _rand(1, 3, 3, 3)
    assert torch.allclose(op.A(op.A_adjoint(y)), y / 16)  # A A^T = I / f^2


def test_mask_errors():
    with pytest.raises(InputError, match=r"mask of shape \(10, 12\) does not fit an image of shape \(2, 3, 12, 12\)"):
        PixelMask(torch.ones(10, 12)).A(torch.zeros(SHAPE))
    with pytest.raises(InputError, match=r"mask of shape \(2, 12, 12\) does not fit an image of shape"):
        PixelMask(torch.ones(2, 12, 12)).measured_shape(SHAPE)
    with pytest.raises(InputError, match="the mask keeps no pixels"):
        PixelMask(torch.zeros(12, 12))
    with pytest.raises(InputError, match="mask values must be 0 or 1"):
        PixelMask(torch.full((12, 12), 0.5))
    with pytest.raises(InputError, match=r"shape \(H, W\) or \(C, H, W\)"):
        PixelMask(torch.ones(12))


def test_downsample_errors():
    message = "a 30x31 image is not divisible by the downsampling factor 4; crop it to 28x28$"
    with pytest.raises(InputError, match=message):
        Downsample(4).A(torch.zeros(1, 3, 30, 31))
    with pytest.raises(InputError, match="not divisible"):
        Downsample(2).measured_shape((1, 3, 12, 13))
    for factor in (1, 0, 2.5, True):
        with pytest.raises(InputError, match="factor must be an integer >= 2"):
            Downsample(factor)


def test_operators_need_batched_images():
    for op in OPERATORS.values():
        with pytest.raises(InputError, match=r"\(B, C, H, W\) tensors, got shape \(3, 12, 12\)"):
            op.measured_shape((3, 12, 12))


def test_from_deepinv_delegates_and_checks():
    physics = FakePhysics()
    op = from_deepinv(physics)
    x = _rand(*SHAPE)
    assert torch.equal(op.A(x), physics.A(x))
    assert op.measured_shape(SHAPE) == (2, 3, 6, 12)

    class NoAdjoint:
        def A(self, x):
            return x

    with pytest.raises(InputError, match="NoAdjoint is not a forward operator: it has no A_adjoint"):
        from_deepinv(NoAdjoint())


def test_a_real_deepinv_physics_plugs_in():
    dinv = pytest.importorskip("deepinv")
    physics = dinv.physics.Inpainting(tensor_size=(3, 8, 8), mask=0.5)
    op = from_deepinv(physics)
    x, y = torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose(op.A(x), physics.A(x))
    assert torch.isclose((op.A(x) * y).sum(), (x * op.A_adjoint(y)).sum())


@pytest.mark.parametrize("photons", [5.0, 25.0])
def test_stabilised_poisson_data_average_to_the_forward_map(photons):
    """E t = A x, also at a few counts, where the plain transform of the mean is biased."""
    op = AnscombeStabilised(Identity(), photons)
    levels = torch.tensor([0.0, 0.02, 0.1, 0.3, 0.6, 0.9], dtype=torch.float64)
    x = levels.reshape(1, 1, 1, -1).expand(1, 1, 4000, -1)
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.poisson(photons * x.numpy()) / photons)
    t = op.stabilise(y)
    mean, std = t.mean(dim=(0, 1, 2)), t.std(dim=(0, 1, 2))
    assert torch.allclose(mean, op.A(levels.reshape(1, 1, 1, -1))[0, 0, 0], atol=4 * float(std.max()) / 4000**0.5)
    plain = (2 * torch.sqrt(photons * levels + 0.375) - op.offset) / op.span
    assert float((plain - mean)[2].abs()) > 5 * float(std[2]) / 4000**0.5  # the bias A corrects is real
    counts = photons * levels
    assert torch.allclose(std[counts >= 4], torch.tensor(op.sigma, dtype=torch.float64), rtol=0.15)
    assert torch.all(std[counts < 1] < op.sigma)


def test_stabilised_forward_map_interpolates_the_expected_transform_and_has_gradients():
    op = AnscombeStabilised(Identity(), 12.0)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    exact = (expected_anscombe(12.0 * x.detach().numpy()) - op.offset) / op.span
    assert np.allclose(op.A(x).detach().numpy(), exact, atol=1e-6)
    op.A(x).sum().backward()
    assert torch.all(torch.isfinite(x.grad)) and torch.all(x.grad > 0)
    assert float(op.A(torch.zeros(1, 1, 1, 1))) == 0.0
    assert float(op.stabilise(torch.ones(1))) == pytest.approx(1.0) and float(op.stabilise(torch.zeros(1))) == 0.0


def test_stabilised_wraps_an_inner_operator():
    mask = _rand(12, 12, seed=1) > 0.5
    op = AnscombeStabilised(PixelMask(mask), 5.0)
    x = _rand(*SHAPE)
    assert torch.all(op.A(x)[:, :, ~mask] == 0) and op.measured_shape(SHAPE) == SHAPE
    assert torch.equal(observed_weights(op, SHAPE), observed_weights(PixelMask(mask), SHAPE))
    assert describe(op).startswith("pixel mask") and "Anscombe-stabilised (5 photons)" in describe(op)
    down = AnscombeStabilised(Downsample(2), 5.0)
    assert down.measured_shape(SHAPE) == (2, 3, 6, 6) and down.A_adjoint(torch.zeros(2, 3, 6, 6)).shape == SHAPE


@pytest.mark.parametrize("photons", [0, -3.0, float("inf"), float("nan"), True, "5"])
def test_stabilised_refuses_bad_photon_counts(photons):
    with pytest.raises(InputError, match="photons must be a positive number"):
        AnscombeStabilised(Identity(), photons)


def test_stabilised_accepts_numpy_photon_counts():
    assert AnscombeStabilised(Identity(), np.int64(5)).photons == 5.0


def test_stabilised_refuses_negative_data():
    with pytest.raises(InputError, match="Poisson counts must be >= 0"):
        AnscombeStabilised(Identity(), 5.0).stabilise(torch.tensor([0.2, -0.1]))
