import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from conftest import smooth_image

import dipddpm.batch as batch_module
import dipddpm.cli as cli_module
from dipddpm.cli import main, parse_sigma
from dipddpm.errors import InputError
from dipddpm.io import read_image, write_image

FAST_ARGS = ["--max-iter", "25", "--quiet"]


@pytest.fixture(autouse=True)
def small_network(monkeypatch):
    """Keep the CLI fast: a tiny network through the same code path."""
    from dataclasses import replace

    from dipddpm import api
    from dipddpm.config import DenoiserConfig, StagingConfig
    from dipddpm.engine import TrainConfig
    from dipddpm.nets import NetConfig

    fast = DenoiserConfig(train=TrainConfig(net=NetConfig(channels=8, depth=3, input_channels=8)),
                          staging=StagingConfig(num_stages=2, min_iter=5, max_iter=10))
    original = api.denoise

    def denoise(*args, **kwargs):
        given = kwargs.get("config")  # a preset's: keep what makes it that preset, shrink the network
        kwargs["config"] = fast if given is None else replace(
            fast, staging=fast.staging if given.staging == StagingConfig() else given.staging,
            train=replace(fast.train, max_iter=given.train.max_iter,
                          net=replace(fast.train.net, padding_mode=given.train.net.padding_mode)),
            ensemble=given.ensemble, workers=given.workers)
        return original(*args, **kwargs)

    monkeypatch.setattr(cli_module, "denoise", denoise)
    monkeypatch.setattr(batch_module, "denoise", denoise)


@pytest.fixture
def noisy_png(tmp_path, rng):
    clean = smooth_image(24, 20)
    noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1)
    write_image(tmp_path / "clean.png", np.round(clean * 255).astype(np.uint8))
    return write_image(tmp_path / "noisy.png", np.round(noisy * 255).astype(np.uint8))


def test_denoise_end_to_end(tmp_path, noisy_png, capsys):
    out, js = tmp_path / "out.png", tmp_path / "run.json"
    assert main(["denoise", str(noisy_png), "-o", str(out), "--sigma", "25/255", "--json", str(js), *FAST_ARGS]) == 0
    image = read_image(out)
    assert image.shape == read_image(noisy_png).shape and image.dtype == np.uint8
    data = json.loads(js.read_text())
    assert data["sigma_used"] == pytest.approx(25 / 255) and data["sigma_source"] == "given"
    assert data["iterations_run"] <= 25 and "ref_psnr" not in data
    assert capsys.readouterr().out == ""


def test_denoise_watch_and_plot(tmp_path, noisy_png, capsys):
    out, plot, js = tmp_path / "out.png", tmp_path / "curves.png", tmp_path / "run.json"
    compare = tmp_path / "compare.svg"
    code = main(["denoise", str(noisy_png), "-o", str(out), "--sigma", "0.1", "--watch", "es-emv,fixed:5",
                 "--plot", str(plot), "--compare", str(compare), "--json", str(js), "--max-iter", "25"])
    assert code == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert compare.read_text().count("<image") == 2  # noisy and restored; 24x20 is too small for a zoom row
    data = json.loads(js.read_text())
    assert data["stoppers"]["fixed:5"]["fired_at"] == 5
    assert "fixed:5 would have stopped at iteration 5" in capsys.readouterr().out


def test_denoise_with_reference_reports_evaluation(tmp_path, noisy_png, capsys):
    out, js = tmp_path / "out.png", tmp_path / "run.json"
    code = main(["denoise", str(noisy_png), "-o", str(out), "--ref", str(tmp_path / "clean.png"), "--json", str(js),
                 "--max-iter", "25"])
    assert code == 0
    data = json.loads(js.read_text())
    assert data["sigma_source"] == "estimated"
    for key in ("ref_psnr", "oracle_psnr", "oracle_iteration"):
        assert key in data
    assert len(data["history"]["oracle"]) == data["iterations_run"]
    printed = capsys.readouterr().out
    assert "evaluation only" in printed and "stopped at iteration" in printed
    stops = data["stoppers"]["recorruption"]["components"]  # a colour image: each component at its own stop
    assert f"chrominance from iterations {stops['C1']['kept_iteration']} and {stops['C2']['kept_iteration']}" in printed
    assert data["stop_iteration"] == max(c["kept_iteration"] for c in stops.values())


@pytest.mark.parametrize("dtype,suffix,shape", [(np.uint16, ".png", (12, 10, 3)), (np.uint16, ".tif", (12, 10)),
                                                (np.float32, ".tif", (12, 10, 3)), (np.uint8, ".png", (3, 5, 4)),
                                                (np.uint8, ".png", (1, 50))])
def test_unusual_images_keep_shape_and_dtype(tmp_path, rng, dtype, suffix, shape):
    image = rng.random(shape)
    image = image.astype(dtype) if dtype == np.float32 else (image * np.iinfo(dtype).max).astype(dtype)
    src = write_image(tmp_path / f"in{suffix}", image)
    out = tmp_path / f"out{suffix}"
    assert main(["denoise", str(src), "-o", str(out), "--sigma", "0.1", *FAST_ARGS]) == 0
    back = read_image(out)
    assert back.dtype == image.dtype and back.shape == image.shape
    if shape[-1] == 4:
        assert np.array_equal(back[..., 3], image[..., 3])


def _bad(tmp_path, noisy_png):
    nan = tmp_path / "nan.tif"
    tifffile.imwrite(nan, np.full((8, 8), np.nan, np.float32))
    negative = tmp_path / "negative.tif"
    tifffile.imwrite(negative, np.linspace(-0.2, 0.8, 64, dtype=np.float32).reshape(8, 8))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("no pixels here")
    out = str(tmp_path / "out.png")
    zero_mask = write_image(tmp_path / "zero.png", np.zeros((24, 20), np.uint8))
    two_channel_mask = write_image(tmp_path / "mask2.png", np.full((24, 20, 2), 255, np.uint8))
    inpaint = ["inpaint", str(noisy_png), "-o", out, "--mask"]
    upscale = ["upscale", str(noisy_png), "-o", out, "--scale"]
    return {
        "missing file": (["denoise", str(tmp_path / "nope.png"), "-o", out], "no such file"),
        "empty file": (["denoise", str(empty), "-o", out], "empty"),
        "not an image": (["denoise", str(text), "-o", out], "not a readable image"),
        "nan pixels": (["denoise", str(nan), "-o", out], "NaN"),
        "negative sigma": (["denoise", str(noisy_png), "-o", out, "--sigma", "-0.1"], "positive"),
        "text sigma": (["denoise", str(noisy_png), "-o", out, "--sigma", "abc"], "not a number"),
        "sigma in 8-bit units": (["denoise", str(noisy_png), "-o", out, "--sigma", "25"], "25/255"),
        "unwritable output": (["denoise", str(noisy_png), "-o", str(tmp_path / "no" / "o.png")], "does not exist"),
        "bad output format": (["denoise", str(noisy_png), "-o", str(tmp_path / "o.gif")], "unknown output format"),
        "unknown stopper": (["denoise", str(noisy_png), "-o", out, "--stopper", "magic"], "unknown stopper"),
        "unknown watched stopper": (["denoise", str(noisy_png), "-o", out, "--watch", "es-wmv,magic"],
                                    "unknown stopper"),
        "bad plot format": (["denoise", str(noisy_png), "-o", out, "--plot", str(tmp_path / "p.gif")],
                            "unknown output format"),
        "bad compare format": (["denoise", str(noisy_png), "-o", out, "--compare", str(tmp_path / "c.bmp")],
                               "unknown output format"),
        "oracle without ref": (["denoise", str(noisy_png), "-o", out, "--stopper", "oracle"], "reference"),
        "ref of another size": (["denoise", str(noisy_png), "-o", out, "--ref", str(noisy_png.parent / "small.png")],
                                "reference"),
        "missing output option": (["denoise", str(noisy_png)], "-o"),
        "unknown noise": (["denoise", str(noisy_png), "-o", out, "--noise", "shot"], "--noise"),
        "recorruption with poisson": (["denoise", str(noisy_png), "-o", out, "--noise", "poisson", "--stopper",
                                       "recorruption"], "only then"),
        "photons with gaussian noise": (["denoise", str(noisy_png), "-o", out, "--photons", "5"],
                                        "photons go with Poisson noise"),
        "negative poisson data": (["denoise", str(negative), "-o", str(tmp_path / "out.tif"), "--noise", "poisson"],
                                  "Poisson data cannot be negative"),
        "negative photons": (["denoise", str(noisy_png), "-o", out, "--noise", "poisson", "--photons", "-1"],
                             "photons must be a positive number"),
        "text photons": (["denoise", str(noisy_png), "-o", out, "--noise", "poisson", "--photons", "many"],
                         "--photons"),
        "mask of another size": (inpaint + [str(noisy_png.parent / "small.png")],
                                 "the mask is 5x5 pixels but the image is 24x20"),
        "empty mask": (inpaint + [str(zero_mask)], "the mask keeps no pixels"),
        "mask with other channels": (inpaint + [str(two_channel_mask)], "channels"),
        "missing mask": (["inpaint", str(noisy_png), "-o", out], "--mask"),
        "inpaint recorruption without sigma": (inpaint + [str(noisy_png), "--stopper", "recorruption"], "needs sigma"),
        "inpaint ref of another size": (inpaint + [str(noisy_png), "--ref", str(noisy_png.parent / "small.png")],
                                        "reference"),
        "scale 1": (upscale + ["1"], "--scale must be an integer of at least 2"),
        "scale not an integer": (upscale + ["2.5"], "--scale must be an integer of at least 2"),
        "upscale ref of the input's size": (upscale + ["2", "--ref", str(noisy_png)], "restored to 48x40"),
        "upscale unwritable output": (["upscale", str(noisy_png), "-o", str(tmp_path / "no" / "o.png"), "--scale",
                                       "2"], "does not exist"),
    }


CASES = ["missing file", "empty file", "not an image", "nan pixels", "negative sigma", "text sigma",
         "sigma in 8-bit units", "unwritable output", "bad output format", "unknown stopper",
         "unknown watched stopper", "bad plot format", "bad compare format", "oracle without ref",
         "ref of another size", "missing output option", "unknown noise", "recorruption with poisson",
         "photons with gaussian noise", "negative poisson data", "negative photons", "text photons",
         "mask of another size", "empty mask", "mask with other channels", "missing mask",
         "inpaint recorruption without sigma", "inpaint ref of another size", "scale 1", "scale not an integer",
         "upscale ref of the input's size", "upscale unwritable output"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, noisy_png, capsys, case):
    write_image(tmp_path / "small.png", np.zeros((5, 5), np.uint8))
    existing = tmp_path / "out.png"
    existing.write_bytes(b"keep me")
    args, message = _bad(tmp_path, noisy_png)[case]
    code = main(args + ["--quiet"] if args[0] == "denoise" and "-o" in args else args)
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("dipddpm: error:") and message in err
    assert existing.read_bytes() == b"keep me"
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]


def test_console_script_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dipddpm", "denoise", str(tmp_path / "missing.png"), "-o",
                             str(tmp_path / "o.png")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("dipddpm: error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("method", [[], ["--method", "wavelet"], ["--method", "pca"], ["--method", "weak-texture"]])
def test_estimate_sigma_command(tmp_path, rng, capsys, method):
    flat = np.clip(0.5 + 0.1 * rng.standard_normal((64, 64, 3)), 0, 1)
    path = write_image(tmp_path / "flat.tif", flat.astype(np.float32))
    assert main(["estimate-sigma", str(path), *method]) == 0
    value = float(capsys.readouterr().out.split()[0])
    assert value == pytest.approx(0.1, rel=0.1)


def test_estimate_sigma_command_bad_method(tmp_path, rng, capsys):
    path = write_image(tmp_path / "flat.png", np.full((32, 32), 128, np.uint8))
    assert main(["estimate-sigma", str(path), "--method", "mad"]) == 2
    assert "--method" in capsys.readouterr().err


@pytest.mark.parametrize("text,value", [("0.1", 0.1), ("25/255", 25 / 255), (" 15 / 255 ", 15 / 255), ("1e-2", 0.01)])
def test_parse_sigma(text, value):
    assert parse_sigma(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["0", "-1", "1", "25", "x", "1/0", "nan", "inf"])
def test_parse_sigma_rejects(text):
    with pytest.raises(InputError):
        parse_sigma(text)


def test_demo_writes_its_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--max-iter", "20"]) == 0
    for name in ("clean.png", "noisy.png", "restored.png", "curves.png", "comparison.png", "run.json"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr().out
    for word in ("PSNR noisy", "PSNR restored", "PSNR oracle", "stop gap", "time"):
        assert word in printed


def test_denoise_in_tiles_writes_every_tile_to_json(tmp_path, noisy_png, capsys):
    out, js = tmp_path / "out.png", tmp_path / "run.json"
    code = main(["denoise", str(noisy_png), "-o", str(out), "--tile", "16", "--overlap", "4", "--json", str(js),
                 "--max-iter", "5"])
    assert code == 0 and read_image(out).shape == read_image(noisy_png).shape
    data = json.loads(js.read_text())
    assert data["tiled"] and data["tile"] == 16 and len(data["tiles"]) == 4
    assert data["config"]["workers"] is None  # --workers auto: the tiles go to one process per core
    assert "4 tiles of 16 px" in capsys.readouterr().out
    alone = tmp_path / "alone.png"
    assert main(["denoise", str(noisy_png), "-o", str(alone), "--tile", "16", "--overlap", "4", "--max-iter", "5",
                 "--workers", "1", "--quiet"]) == 0
    assert np.abs(read_image(alone).astype(int) - read_image(out).astype(int)).max() <= 1  # threads: last bits only


def test_paper_preset_fits_y_for_a_fixed_budget(tmp_path, noisy_png):
    out, js = tmp_path / "out.png", tmp_path / "run.json"
    assert main(["denoise", str(noisy_png), "-o", str(out), "--preset", "paper", "--max-iter", "7", "--json", str(js),
                 "--quiet"]) == 0
    data = json.loads(js.read_text())
    assert data["stopper"] == "fixed:7" and data["stop_iteration"] == 7
    assert data["config"]["staging"]["ratio"] == 0 and data["config"]["train"]["net"]["padding_mode"] == "reflect"


@pytest.mark.parametrize("extra,message", [
    (["--preset", "fastest"], "unknown preset"), (["--tile", "big"], "--tile"), (["--tile", "4"], "tile must be"),
    (["--tile", "16", "--overlap", "4", "--plot", "p.png"], "tiles"),
    (["--ensemble", "0"], "--ensemble"), (["--ensemble", "2", "--plot", "p.png"], "an ensemble has 2"),
    (["--workers", "0"], "--workers takes auto or a number"), (["--workers", "many"], "--workers takes auto"),
])
def test_bad_tiling_and_preset_options_write_nothing(tmp_path, noisy_png, capsys, extra, message):
    out = tmp_path / "out.png"
    extra = [str(tmp_path / a) if a.endswith(".png") else a for a in extra]
    assert main(["denoise", str(noisy_png), "-o", str(out), *extra, *FAST_ARGS]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "p.png").exists()


@pytest.fixture
def mask_png(tmp_path):
    mask = (np.random.default_rng(0).random((24, 20)) < 0.6).astype(np.uint8) * 255
    return write_image(tmp_path / "mask.png", mask)


def test_inpaint_end_to_end(tmp_path, noisy_png, mask_png, capsys):
    out, js, plot = tmp_path / "filled.png", tmp_path / "run.json", tmp_path / "curves.svg"
    code = main(["inpaint", str(noisy_png), "--mask", str(mask_png), "-o", str(out), "--json", str(js), "--plot",
                 str(plot), "--ref", str(tmp_path / "clean.png"), "--max-iter", "20"])
    assert code == 0
    image = read_image(out)
    assert image.shape == read_image(noisy_png).shape and image.dtype == np.uint8
    data = json.loads(js.read_text())
    assert data["physics"].startswith("pixel mask") and data["noise"] == "gaussian"
    assert data["stopper"] == "held-out" and data["sigma_source"] == "none" and "ref_psnr" in data
    assert plot.read_text().startswith("<?xml")
    printed = capsys.readouterr().out
    assert "operator: pixel mask" in printed and "sigma not used" in printed and "wrote" in printed


def test_inpaint_with_sigma_uses_recorruption(tmp_path, noisy_png, mask_png):
    out, js = tmp_path / "filled.png", tmp_path / "run.json"
    assert main(["inpaint", str(noisy_png), "--mask", str(mask_png), "-o", str(out), "--sigma", "25/255", "--json",
                 str(js), *FAST_ARGS]) == 0
    data = json.loads(js.read_text())
    assert data["stopper"] == "recorruption" and data["sigma_source"] == "given"
    assert data["estimated_psnr"] is None  # it would be that of the observed pixels only


def test_upscale_end_to_end(tmp_path, noisy_png):
    out, js, ref = tmp_path / "big.png", tmp_path / "run.json", tmp_path / "big-clean.png"
    write_image(ref, np.round(smooth_image(48, 40) * 255).astype(np.uint8))
    assert main(["upscale", str(noisy_png), "--scale", "2", "-o", str(out), "--ref", str(ref), "--json", str(js),
                 *FAST_ARGS]) == 0
    assert read_image(out).shape == (48, 40, 3)
    data = json.loads(js.read_text())
    assert data["physics"] == "downsample x2" and data["stopper"] == "held-out"
    assert data["evaluation"]["noisy_psnr"] is None and data["ref_psnr"] is not None


@pytest.mark.parametrize("noise", ["poisson", "impulse", "speckle"])
def test_denoise_other_noise_uses_the_held_out_stop(tmp_path, noisy_png, noise):
    out, js = tmp_path / "out.png", tmp_path / "run.json"
    assert main(["denoise", str(noisy_png), "-o", str(out), "--noise", noise, "--json", str(js), *FAST_ARGS]) == 0
    data = json.loads(js.read_text())
    assert data["stopper"] == "held-out" and data["noise"] == noise and data["sigma_used"] is None


def test_denoise_poisson_with_photons_stops_by_recorruption(tmp_path, noisy_png):
    out, js = tmp_path / "out.png", tmp_path / "run.json"
    assert main(["denoise", str(noisy_png), "-o", str(out), "--noise", "poisson", "--photons", "12", "--json", str(js),
                 *FAST_ARGS]) == 0
    data = json.loads(js.read_text())
    assert data["stopper"] == "recorruption" and data["noise"] == "poisson" and data["sigma_source"] == "photons"
    assert "Anscombe-stabilised (12 photons)" in data["physics"] and read_image(out).shape == (24, 20, 3)


@pytest.fixture
def stack_tif(tmp_path, rng):
    """A 3-page 32x32 uint8 stack (tifffile axes QYX), each page its own noisy image."""
    clean = smooth_image(32, 32, 1)
    pages = [np.round(np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1) * 255) for _ in range(3)]
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.stack(pages).astype(np.uint8), photometric="minisblack")
    return path


def test_denoise_restores_a_stack_page_by_page(tmp_path, stack_tif):
    out, js = tmp_path / "out.tif", tmp_path / "run.json"
    assert main(["denoise", str(stack_tif), "-o", str(out), "--json", str(js), *FAST_ARGS]) == 0
    restored = tifffile.imread(out)
    assert restored.shape == (3, 32, 32) and restored.dtype == np.uint8
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "QYX" and len(tif.pages) == 3
    pages = json.loads(js.read_text())["pages"]
    assert len(pages) == 3 and all(p["iterations_run"] <= 25 for p in pages)
    assert not np.array_equal(restored[0], tifffile.imread(stack_tif)[0])


def test_denoise_keeps_a_planar_rgb_tiff_planar(tmp_path, rng):
    clean = smooth_image(24, 20)
    noisy = np.round(np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1) * 255).astype(np.uint8)
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.moveaxis(noisy, -1, 0), photometric="rgb", planarconfig="separate")
    out = tmp_path / "out.tif"
    assert main(["denoise", str(planar), "-o", str(out), *FAST_ARGS]) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "SYX" and tif.series[0].shape == (3, 24, 20)


@pytest.mark.parametrize("extra,message", [
    (["-o", "OUT.png"], "write it to a .tif file"),
    (["-o", "OUT.tif", "--plot", "PLOT.png"], "stack of 3 images; --plot and --compare"),
])
def test_denoise_stack_bad_outputs(tmp_path, stack_tif, capsys, extra, message):
    args = [a.replace("OUT", str(tmp_path / "out")).replace("PLOT", str(tmp_path / "plot")) for a in extra]
    assert main(["denoise", str(stack_tif), *args, *FAST_ARGS]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not list(tmp_path.glob("out*"))


def test_batch_cli_folder_with_a_broken_file_and_a_stack(tmp_path, noisy_png, stack_tif, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    noisy_png.rename(folder / "noisy.png")
    stack_tif.rename(folder / "stack.tif")
    (folder / "broken.tif").write_bytes(b"II*\x00garbage")
    out = tmp_path / "out"
    assert main(["batch", str(folder), "-o", str(out), "--max-iter", "15", "--sigma", "25/255", "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "2 restored, 0 skipped (done before), 1 failed, of 3" in captured.out
    assert captured.err.startswith("dipddpm: failed: ") and captured.err.count("\n") == 1
    assert tifffile.imread(out / "stack.tif").shape == (3, 32, 32)
    assert main(["batch", str(folder / "noisy.png"), str(folder / "stack.tif"), "-o", str(out), "--max-iter", "15",
                 "--sigma", "25/255", "--workers", "1", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    with open(out / "summary.csv") as handle:
        assert [line.split(",")[2] for line in handle.read().splitlines()[1:]] == ["skipped", "skipped"]


@pytest.mark.parametrize("args,message", [
    (["--ray-address", "auto"], "--ray-address applies with --ray only"),
    (["--gpus-per-task", "0.5"], "--gpus-per-task applies with --ray only"),
    (["--ray", "--workers", "2"], "choose --workers (local processes) or --ray"),
    (["--preset", "nope"], "unknown preset"),
    (["--sigma", "25"], "did you mean 25/255"),
    (["--workers", "0"], "--workers takes auto or a number"),
    (["--workers", "two"], "--workers takes auto or a number"),
])
def test_batch_cli_bad_options(tmp_path, noisy_png, capsys, args, message):
    assert main(["batch", str(noisy_png), "-o", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_batch_cli_output_folder_is_a_file(tmp_path, noisy_png, capsys):
    (tmp_path / "taken").write_text("x")
    assert main(["batch", str(noisy_png), "-o", str(tmp_path / "taken")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_denoise_ensemble_reports_every_member(tmp_path, noisy_png, capsys):
    out, js = tmp_path / "out.png", tmp_path / "run.json"
    assert main(["denoise", str(noisy_png), "-o", str(out), "--ensemble", "3", "--json", str(js),
                 "--max-iter", "12"]) == 0
    data = json.loads(js.read_text())
    assert [m["sign"] for m in data["members"]] == [1, -1, 1] and data["config"]["ensemble"] == 3
    assert data["iterations_run"] == sum(m["iterations_run"] for m in data["members"])
    assert "ensemble of 3 runs in antithetic pairs" in capsys.readouterr().out


def test_denoise_tiles_a_large_image_for_time_unless_plotting(tmp_path, rng, capsys):
    clean = np.clip(np.linspace(0.2, 0.8, 256)[:, None, None] + np.zeros((256, 40, 3)), 0, 1)
    noisy = (255 * np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1)).round().astype(np.uint8)
    src, out, compare = tmp_path / "tall.png", tmp_path / "out.png", tmp_path / "compare.svg"
    write_image(src, noisy)
    assert main(["denoise", str(src), "-o", str(out), "--max-iter", "3", "--compare", str(compare)]) == 0
    assert "2 tiles of 144 px" in capsys.readouterr().out and read_image(out).shape == noisy.shape
    plotted = tmp_path / "plotted.png"
    assert main(["denoise", str(src), "-o", str(plotted), "--max-iter", "3", "--plot", str(tmp_path / "p.png")]) == 0
    assert "tiles of" not in capsys.readouterr().out  # --plot draws one run: not tiled when it fits in memory
