import pytest
import torch

from dipddpm import precision
from dipddpm.config import DenoiserConfig
from dipddpm.engine import TrainConfig
from dipddpm.nets import NetConfig
from dipddpm.precision import forward_precision, native_bfloat16
from dipddpm.restore import restore_tensor

EPYC = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\nbugs\t\t: sysret_ss_attrs\n"
XEON_NO_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"


def test_native_bfloat16_reads_the_flags_line_only():
    assert native_bfloat16(EPYC)
    assert not native_bfloat16(XEON_NO_BF16)
    assert not native_bfloat16("model name\t: avx512_bf16 marketing name\nflags\t\t: fpu avx2\n")
    assert not native_bfloat16("flags\t\t: fpu avx512_bf16x\n")  # a whole word, not a prefix
    assert not native_bfloat16("")


@pytest.mark.parametrize("asked", ["float32", "bfloat16"])
def test_an_explicit_precision_is_kept_on_any_device(asked):
    assert forward_precision(asked, torch.device("cpu")) == asked
    assert forward_precision(asked, torch.device("cuda")) == asked


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bfloat16_only_on_a_cpu_with_native_bfloat16(monkeypatch, native):
    monkeypatch.setattr(precision, "_this_cpu_has_bfloat16", lambda: native)
    assert forward_precision("auto", torch.device("cpu")) == ("bfloat16" if native else "float32")
    assert forward_precision("auto", torch.device("cuda")) == "float32"  # not measured on a GPU


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        forward_precision("float16", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="half")


def test_a_restoration_records_the_precision_it_used(monkeypatch):
    monkeypatch.setattr(precision, "_this_cpu_has_bfloat16", lambda: True)
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    small = DenoiserConfig(train=TrainConfig(max_iter=3, net=NetConfig(depth=2, channels=4, skip_channels=2)))
    result = restore_tensor(y, 0.1, config=small, stopper="fixed:3")
    assert result.config["train"]["precision"] == "bfloat16"
    monkeypatch.setattr(precision, "_this_cpu_has_bfloat16", lambda: False)
    assert restore_tensor(y, 0.1, config=small, stopper="fixed:3").config["train"]["precision"] == "float32"
