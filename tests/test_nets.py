import pytest
import torch

from dipddpm.nets import NetConfig, SkipUNet, padded_size


@pytest.mark.parametrize("h,w,depth,expected", [(100, 60, 5, (128, 64)), (1, 50, 5, (64, 64)), (3, 5, 3, (16, 16)),
                                                (256, 256, 5, (256, 256)), (257, 33, 4, (272, 48))])
def test_padded_size(h, w, depth, expected):
    ph, pw = padded_size(h, w, depth)
    assert (ph, pw) == expected
    assert ph >= h and pw >= w and ph % 2**depth == 0 and pw % 2**depth == 0
    assert min(ph, pw) // 2**depth >= 2


@pytest.mark.parametrize("cfg", [NetConfig(channels=8, depth=3), NetConfig(channels=8, depth=2, skip_channels=0),
                                 NetConfig(channels=8, depth=3, padding_mode="reflect", upsample="nearest")])
@pytest.mark.parametrize("out_channels", [1, 3])
def test_skip_unet_shape_and_range(cfg, out_channels):
    net = SkipUNet(out_channels, cfg)
    u = torch.rand(1, cfg.input_channels, 32, 48)
    out = net(u)
    assert out.shape == (1, out_channels, 32, 48)
    assert out.min() >= 0 and out.max() <= 1


def test_skip_unet_has_the_configured_width():
    small = sum(p.numel() for p in SkipUNet(3, NetConfig(channels=8)).parameters())
    large = sum(p.numel() for p in SkipUNet(3, NetConfig(channels=16)).parameters())
    assert large > 3 * small


@pytest.mark.parametrize("kwargs", [dict(channels=0), dict(depth=0), dict(padding_mode="mirror"),
                                    dict(upsample="cubic"), dict(skip_channels=-1)])
def test_bad_net_config(kwargs):
    with pytest.raises(ValueError):
        NetConfig(**kwargs)
