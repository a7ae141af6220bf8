"""Stage-by-stage generation (measure.generate_images) gives the images FluxPipeline itself gives, times every step,
and handles prompts as diffusers does."""

from __future__ import annotations

import numpy as np
import pytest

from fluxplan.errors import BadInput
from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement
from fluxplan.run.measure import PromptTruncated, generate_images

BF16 = Candidate("bf16", "bf16", TextEncoderPlacement.RESIDENT, Offload.NONE, Compile.NONE, False)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from fluxplan.run.builder import build
    from fluxplan.run.synth import ensure_synthetic

    return build(BF16, ensure_synthetic("tiny", root=tmp_path_factory.mktemp("cache")), device="cpu")


def gen(built, prompt="a red fox", **over):
    kw = dict(height=256, width=256, steps=2, guidance=3.5, seed=3, batch=1, images=1, max_sequence_length=32,
              placement="resident", device="cpu")
    kw.update(over)
    return generate_images(built, prompt, **kw)


def test_images_equal_the_pipelines_own_output(built):
    import torch

    def reference(seed):
        return np.asarray(built.pipe("a red fox", height=256, width=256, num_inference_steps=2, guidance_scale=3.5,
                                     max_sequence_length=32, generator=torch.Generator("cpu").manual_seed(seed)).images[0])

    [single], _ = gen(built)
    assert np.array_equal(np.asarray(single), reference(3))  # same computation, bit for bit
    images, m = gen(built, batch=2, images=3)
    for i, im in enumerate(images):  # image i has seed 3 + i whatever the batch (batched matmuls round differently)
        assert np.abs(np.asarray(im, dtype=int) - reference(3 + i).astype(int)).max() <= 1, f"image {i}"
    assert [len(call) for call in m.step_seconds] == [2, 2]  # 3 images, 2 per call
    assert len(m.decode_seconds) == 2
    assert all(s > 0 for s in m.steps_flat) and m.encode_s > 0
    assert m.step_s == sorted(m.steps_flat[1:])[1]  # median of the steps after the first: [a, b, c] -> b
    assert m.compile_s == pytest.approx(max(0.0, m.steps_flat[0] - m.step_s))
    assert m.peak_reserved_gib is None and m.peak_nvml_gib is None  # no CUDA here


def test_a_long_prompt_is_truncated_with_a_warning(built):
    words = " ".join(f"word{i}" for i in range(60))
    with pytest.warns(PromptTruncated, match="T5"):
        images, m = gen(built, prompt=words)
    assert any("T5" in n and "32 read" in n for n in m.notes)
    # diffusers keeps the first tokens: a prompt that agrees on them gives the same picture
    same, _ = gen(built, prompt=words + " and more words at the end")
    assert np.array_equal(np.asarray(images[0]), np.asarray(same[0]))


@pytest.mark.parametrize("prompt", ["", "   \n"])
def test_an_empty_prompt_is_bad_input(built, prompt):
    with pytest.raises(BadInput, match="empty"):
        gen(built, prompt=prompt)


def test_a_sequence_length_over_t5s_limit_is_bad_input(built):
    with pytest.raises(BadInput, match="between 1 and 512"):
        gen(built, max_sequence_length=513)
