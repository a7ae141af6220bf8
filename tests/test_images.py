"""PNG saving: metadata other tools can read back, atomic writes, and an unwritable destination refused first."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fluxplan.run import images as img
from fluxplan.run.images import ImageMeta, OutputNotWritable, prepare_outputs, read_metadata, save_png

PLAN = {"transformer": "gguf-q4_0", "text_encoder_2": "bf16", "text_encoder_placement": "cpu", "offload": "none",
        "compile": "none", "vae_tiling": False}


def meta(prompt: str = "a red fox, 35mm — «lumière»") -> ImageMeta:
    return ImageMeta(prompt=prompt, seed=7, model="FLUX.1-dev", width=64, height=32, steps=28, guidance=3.5,
                     plan=PLAN, timings={"step_s": 0.25, "steps_s": [[1.5, 0.25]]})


def picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8))


def test_metadata_reads_back_with_pil(tmp_path):
    path = save_png(picture(), tmp_path / "fox.png", meta())
    with Image.open(path) as im:
        text = dict(im.text)
        pixels = np.asarray(im.convert("RGB"))
    assert text["prompt"] == "a red fox, 35mm — «lumière»"
    assert text["seed"] == "7"
    assert text["model"] == "FLUX.1-dev"
    assert json.loads(text["fluxplan_plan"]) == PLAN
    assert json.loads(text["fluxplan_timings"]) == {"step_s": 0.25, "steps_s": [[1.5, 0.25]]}
    assert text["parameters"] == ("a red fox, 35mm — «lumière»\nSteps: 28, Sampler: FlowMatchEuler, CFG scale: 3.5, "
                                  "Seed: 7, Size: 64x32, Model: FLUX.1-dev")
    assert np.array_equal(pixels, np.asarray(picture()))
    assert read_metadata(path)["fluxplan_plan"] == PLAN and read_metadata(path)["seed"] == 7


def _failing_png_writer(image, fp, filename):
    fp.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)  # half a file, then the failure
    raise OSError(28, "No space left on device")


def test_a_failure_mid_save_leaves_no_tmp_and_no_target(tmp_path, monkeypatch):
    monkeypatch.setitem(Image.SAVE, "PNG", _failing_png_writer)
    with pytest.raises(OutputNotWritable, match="No space left"):
        save_png(picture(), tmp_path / "fox.png", meta())
    assert sorted(os.listdir(tmp_path)) == []


def test_a_failure_mid_save_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "fox.png"
    target.write_bytes(b"previous image")
    monkeypatch.setitem(Image.SAVE, "PNG", _failing_png_writer)
    with pytest.raises(OutputNotWritable):
        save_png(picture(), target, meta())
    assert sorted(os.listdir(tmp_path)) == ["fox.png"]
    assert target.read_bytes() == b"previous image"


def test_a_failed_rename_leaves_no_tmp(tmp_path, monkeypatch):
    def no_rename(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(img.os, "replace", no_rename)
    with pytest.raises(OutputNotWritable):
        save_png(picture(), tmp_path / "fox.png", meta())
    assert os.listdir(tmp_path) == []


def test_an_interrupt_mid_save_leaves_no_tmp(tmp_path, monkeypatch):
    def interrupted(image, fp, filename):
        fp.write(b"\x89PNG")
        raise KeyboardInterrupt

    monkeypatch.setitem(Image.SAVE, "PNG", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_png(picture(), tmp_path / "fox.png", meta())
    assert os.listdir(tmp_path) == []


def test_an_unwritable_destination_is_refused_up_front(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputNotWritable, match="cannot write images to"):
        prepare_outputs(blocker / "images", 1, prompt="fox", seed=0)
    with pytest.raises(OutputNotWritable):
        prepare_outputs(blocker / "fox.png", 1, prompt="fox", seed=0)
    assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_a_directory_the_system_refuses_to_write_is_refused(tmp_path):
    # /proc/self refuses new files to every user, root included (a chmod'ed directory does not stop root)
    target = Path("/proc/self")
    if not target.is_dir():
        pytest.fail("this test needs Linux's /proc (the CI machine has it)")
    with pytest.raises(OutputNotWritable, match="cannot write images to /proc/self"):
        prepare_outputs(target, 1, prompt="fox", seed=0)


def test_generate_refuses_an_unwritable_out_before_building(tmp_path, monkeypatch):
    from fluxplan import api

    def must_not_build(*a, **k):
        raise AssertionError("the pipeline was built before the output was checked")

    monkeypatch.setattr(api, "build_plan", must_not_build)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputNotWritable):
        api.generate("a red fox", model="synthetic:tiny", device="cpu", out=blocker / "out", store=False,
                     resolution="256x256", steps=2, transformer="bf16")


def test_output_names(tmp_path):
    (tmp_path / "a-red-fox-s3.png").write_bytes(b"taken")
    paths = prepare_outputs(tmp_path, 2, prompt="A red fox!", seed=3)
    assert paths == [tmp_path / "a-red-fox-s3-1.png", tmp_path / "a-red-fox-s4.png"]
    assert prepare_outputs(tmp_path / "fox.png", 1, prompt="x", seed=0) == [tmp_path / "fox.png"]
    assert prepare_outputs(tmp_path / "new" / "fox.png", 2, prompt="x", seed=0) == [
        tmp_path / "new" / "fox-1.png", tmp_path / "new" / "fox-2.png"]
    with pytest.raises(img.BadInput, match="PNG"):
        prepare_outputs(tmp_path / "fox.jpg", 1, prompt="x", seed=0)
