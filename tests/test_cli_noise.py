"""``dipddpm estimate-noise`` and ``--photons`` on the command line."""

import json

import numpy as np
import pytest
from conftest import smooth_image

from dipddpm.cli import main, parse_photons
from dipddpm.errors import InputError
from dipddpm.io import write_image
from dipddpm.noise_models import sample_gaussian, sample_poisson


def _png(path, image):
    return write_image(path, np.round(image * 255).astype(np.uint8))


@pytest.fixture
def poisson_png(tmp_path):
    return _png(tmp_path / "counts.png", sample_poisson(smooth_image(96, 96), 12, np.random.default_rng(0)))


def test_estimate_noise_prints_the_photon_count(tmp_path, poisson_png, capsys):
    js = tmp_path / "fit.json"
    assert main(["estimate-noise", str(poisson_png), "--json", str(js)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("poisson: ") and "photons at white" in lines[0]
    data = json.loads(js.read_text())
    assert data["kind"] == "poisson" and data["image"] == str(poisson_png)
    assert float(lines[0].split()[1]) == pytest.approx(data["photons"], rel=1e-2)
    assert abs(data["photons"] - 12) <= 3 * data["photons_sd"]


def test_estimate_noise_prints_sigma_for_gaussian_noise(tmp_path, capsys):
    path = _png(tmp_path / "grey.png", sample_gaussian(smooth_image(96, 96, 1), 25 / 255, np.random.default_rng(0)))
    assert main(["estimate-noise", str(path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("gaussian: sigma ")
    assert float(first.split()[2]) == pytest.approx(25 / 255, rel=0.1)


@pytest.mark.parametrize("case", ["missing", "constant", "tiny", "not-an-image", "bad-json-name"])
def test_estimate_noise_bad_input_is_one_line_and_exit_2(tmp_path, poisson_png, capsys, case):
    args = {"missing": [str(tmp_path / "missing.png")],
            "constant": [str(_png(tmp_path / "flat.png", np.full((64, 64), 0.5)))],
            "tiny": [str(_png(tmp_path / "tiny.png", np.random.default_rng(0).random((12, 12))))],
            "not-an-image": [str(tmp_path / "notes.png")],
            "bad-json-name": [str(poisson_png), "--json", str(tmp_path / "fit.txt")]}[case]
    (tmp_path / "notes.png").write_text("not a png")
    assert main(["estimate-noise", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dipddpm: error:") and "Traceback" not in captured.err


@pytest.mark.parametrize("text,value", [(None, None), ("off", "off"), ("12", 12.0), (" 2.5e3", 2500.0)])
def test_parse_photons(text, value):
    assert parse_photons(text) == value


@pytest.mark.parametrize("text", ["0", "-3", "nan", "inf", "auto", "twelve"])
def test_parse_photons_rejects(text):
    with pytest.raises(InputError, match="--photons"):
        parse_photons(text)


def test_denoise_poisson_without_photons_reports_the_estimate(tmp_path, capsys):
    noisy = _png(tmp_path / "counts.png", sample_poisson(smooth_image(24, 24), 12, np.random.default_rng(1)))
    out, js = tmp_path / "out.png", tmp_path / "run.json"
    args = ["--noise", "poisson", "--max-iter", "10", "--json", str(js)]
    assert main(["denoise", str(noisy), "-o", str(out), *args]) == 0
    data = json.loads(js.read_text())
    assert data["sigma_source"] == "photons-estimated" and data["stopper"] == "recorruption"
    assert "estimated from the image" in capsys.readouterr().out


def test_denoise_rejects_bad_photons(tmp_path, capsys):
    noisy = _png(tmp_path / "counts.png", smooth_image(24, 24))
    assert main(["denoise", str(noisy), "-o", str(tmp_path / "o.png"), "--noise", "poisson", "--photons", "x"]) == 2
    assert "--photons" in capsys.readouterr().err
