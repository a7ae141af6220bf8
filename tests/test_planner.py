"""Golden plans, pins and infeasible requests. Each expectation is reasoned from sizes in the test, not copied.

Sizes used in the reasoning (ANCHORS.md, bf16): transformer 22.17 GiB, T5-XXL 8.87 GiB, CLIP 0.23, VAE 0.16;
VAE decode at 1024x1024 adds about 2.4 GiB; the CUDA context about 0.5 GiB; fluxplan keeps a 0.5 GiB margin.
"""

import json
from pathlib import Path

import pytest

from fluxplan import plan
from fluxplan.errors import BadInput, Infeasible, UnknownFormat, UnknownGPU
from fluxplan.models import Compile, Offload, Plan, TextEncoderPlacement

BF16_ALL = 22.17 + 8.87 + 0.23 + 0.16  # every component resident in bf16


@pytest.mark.parametrize("gpu", ["h100", "a100"])
@pytest.mark.parametrize("res", ["1024x1024", "1536x1536"])
def test_80gb_cards_run_everything_in_bf16_resident(gpu, res):
    # 31.4 GiB of weights + activations and decode (< 12 GiB even at 1536^2) fit 79.5 GiB many times over:
    # nothing to trade, and for a single image a compile (minutes) never pays for itself.
    p = plan(gpu, resolution=res)
    c = p.choice
    assert (c.transformer, c.text_encoder_2, c.offload, c.compile) == ("bf16", "bf16", Offload.NONE, Compile.NONE)
    assert c.text_encoder_placement is TextEncoderPlacement.RESIDENT
    assert p.estimate.quality == 1.0
    assert BF16_ALL < p.estimate.peak_vram_gib < p.budget.usable_gib


@pytest.mark.parametrize("gpu", ["4090", "a10", "l4"])
@pytest.mark.parametrize("res", ["1024x1024", "1536x1536"])
def test_24gb_cards_keep_bf16_quality_by_offloading_the_transformer(gpu, res):
    # The bf16 transformer alone (22.17) + decode (2.4) + context (0.5) is above the 22-23.5 GiB usable, so
    # bf16 cannot stay resident; quality 1.0 is still reachable by streaming the transformer from host
    # memory, and the quality objective prefers it to any quantized format.
    p = plan(gpu, resolution=res, ram=64)
    c = p.choice
    assert c.transformer == "bf16" and c.text_encoder_2 == "bf16"
    assert c.offload is not Offload.NONE
    assert p.estimate.peak_vram_gib <= p.budget.usable_gib
    # and the resident bf16 plan is reported as rejected for VRAM, by how much
    vram_misses = [r for r in p.rejected if r.rejection.constraint.value == "vram"]
    assert all(r.rejection.needed > r.rejection.limit for r in vram_misses)


@pytest.mark.parametrize("gpu", ["3060", "4070"])
@pytest.mark.parametrize("res", ["1024x1024", "1536x1536"])
def test_12gb_cards_stream_the_transformer_and_release_t5(gpu, res):
    # 12 GiB cards: bf16 T5 (8.87) fits only without the transformer beside it, so T5 must not stay
    # resident; the transformer (even Q8_0 at about 12 GiB) cannot be resident either at bf16 quality.
    p = plan(gpu, resolution=res, ram=64)
    c = p.choice
    assert c.transformer == "bf16"
    assert c.offload in (Offload.GROUP_LEAF, Offload.GROUP_BLOCK, Offload.SEQUENTIAL)
    assert c.text_encoder_placement is not TextEncoderPlacement.RESIDENT
    assert p.estimate.peak_vram_gib <= p.budget.usable_gib


@pytest.mark.parametrize("res", ["1024x1024", "1536x1536"])
def test_8gb_laptop_needs_t5_off_the_gpu_or_quantized(res):
    # 8 GiB laptop (7.5 usable): bf16 T5 alone with CLIP and context (9.7 GiB) does not fit, so T5 is
    # either run on the CPU, streamed, or quantized. With 64 GiB of host RAM the CPU holds bf16 T5 and the
    # transformer's host copy, so quality stays 1.0; with 16 GiB it cannot hold them and quality drops.
    rich = plan("4060 laptop", resolution=res, ram=64)
    assert rich.estimate.quality == 1.0
    assert rich.choice.text_encoder_placement in (TextEncoderPlacement.CPU, TextEncoderPlacement.FOLLOWS_OFFLOAD)
    poor = plan("4060 laptop", resolution=res, ram=16)
    assert poor.estimate.quality < 1.0
    assert poor.estimate.host_ram_gib <= 16
    for p in (rich, poor):
        assert p.estimate.peak_vram_gib <= p.budget.usable_gib


def test_objective_speed_is_fastest_above_the_floor():
    quality = plan("4090", ram=64)
    speed = plan("4090", ram=64, objective="speed", quality_floor=0.9)
    assert speed.estimate.quality >= 0.9
    assert speed.estimate.latency_s <= quality.estimate.latency_s
    assert all(speed.estimate.latency_s <= a.estimate.latency_s + 1e-9 for a in speed.alternatives)


def test_latency_budget_trades_quality_for_time():
    best = plan("4090", ram=64, images=20)
    fastest = plan("4090", ram=64, images=20, objective="speed", quality_floor=0.0)
    assert fastest.estimate.latency_s < best.estimate.latency_s
    budget = (fastest.estimate.latency_s + best.estimate.latency_s) / 2
    p = plan("4090", ram=64, images=20, latency_budget=budget)
    assert p.estimate.latency_s <= budget
    assert fastest.estimate.quality <= p.estimate.quality <= best.estimate.quality


def test_a_latency_budget_nothing_meets_names_the_fastest():
    with pytest.raises(Infeasible) as e:
        plan("4090", latency_budget=0.01)
    assert "fastest" in str(e.value) and " s per image" in str(e.value)


def test_pins_are_respected_and_the_rest_is_chosen():
    p = plan("4090", transformer="nf4", ram=64)
    assert p.choice.transformer == "bnb-nf4"
    assert p.pins.transformer == "bnb-nf4"


def test_an_infeasible_pin_is_reported_not_changed():
    # bf16 resident on a 24 GB card does not fit (see above): pinning both must fail, naming the pins
    with pytest.raises(Infeasible) as e:
        plan("4090", transformer="bf16", offload="none", text_encoder_placement="resident")
    msg = str(e.value)
    assert "transformer=bf16" in msg and "offload=none" in msg and "GiB" in msg


def test_unknown_names_are_bad_input():
    with pytest.raises(UnknownGPU) as e:
        plan("rtx 4900")
    assert "RTX 4090" in str(e.value)
    with pytest.raises(UnknownFormat):
        plan("4090", transformer="q9_9")
    with pytest.raises(BadInput):
        plan("4090", model="stable-diffusion-1.5")


@pytest.mark.parametrize("kwargs", [dict(vram=0), dict(vram=-3), dict(resolution="1000x1024"),
                                    dict(resolution="128x128"), dict(resolution="8192x1024"), dict(steps=0),
                                    dict(batch=0), dict(images=-1), dict(resolution="big")])
def test_bad_requests_are_bad_input(kwargs):
    with pytest.raises(BadInput):
        plan("4090", **kwargs)


def test_plan_json_round_trip_and_contract():
    p = plan("4090", ram=64)
    again = Plan.from_json(p.to_json())
    assert again.choice == p.choice and again.estimate.peak_vram_gib == p.estimate.peak_vram_gib
    c = p.contract()
    json.dumps(c)
    assert set(c) >= {"gpu", "request", "plan", "estimate", "alternatives", "rejected"}
    assert set(c["plan"]) >= {"transformer", "text_encoder_2", "offload", "compile", "vae_tiling"}
    assert set(c["estimate"]) >= {"peak_vram_gib", "latency_s", "quality", "quality_source", "breakdown"}
    b = c["estimate"]["breakdown"]
    assert set(b["weights_gib"]) == {"transformer", "text_encoder_2", "text_encoder", "vae"}
    # the breakdown adds up to the peak
    parts = sum(b["weights_gib"].values()) + b["denoise_activations_gib"] + b["vae_decode_gib"] + b["overhead_gib"]
    assert parts == pytest.approx(c["estimate"]["peak_vram_gib"], abs=0.01)
    assert all("reason" in r and r["reason"] for r in c["rejected"])


@pytest.mark.parametrize("offload", list(Offload))
@pytest.mark.parametrize("res", ["768x768", "2048x2048"])
def test_each_offload_modes_memory_breakdown_adds_up_with_no_negative_part(offload, res):
    # sequential offload's decode phase reserves a share of the resident one: its parts once showed the whole
    # VAE decode and a negative "context + allocator" row
    b = plan("h100", offload=offload.value, resolution=res).estimate.memory
    parts = [*b.weights_gib.model_dump().values(), b.denoise_activations_gib, b.vae_decode_gib, b.overhead_gib]
    assert min(parts) >= 0
    assert sum(parts) == pytest.approx(plan("h100", offload=offload.value, resolution=res).estimate.peak_vram_gib,
                                       abs=0.01)


@pytest.mark.parametrize("compile_", ["none", "regional"])
def test_a_measured_figures_source_names_its_kind_once(compile_):
    sources = plan("h100", compile=compile_).contract()["estimate"]["sources"]
    for name, s in sources.items():
        assert not s["source"].startswith(f"{s['kind']}: {s['kind']}:"), (name, s["source"])


def test_explain_text_names_the_plan_and_a_rejection_in_plain_words():
    text = plan("4090", ram=64).explain()
    assert "Plan: bf16" in text
    assert "GiB of VRAM" in text  # e.g. "bf16 ...: needs 37.4 GiB of VRAM; 23.5 GiB is usable"


def test_a_candidate_that_failed_before_is_never_chosen_again():
    first = plan("4090", ram=64)
    again = plan("4090", ram=64, exclude=[first.choice])
    assert again.choice != first.choice
    assert again.estimate.quality <= first.estimate.quality


def _obs(c, peak, step, side=1024):
    from fluxplan.models import Observation

    return Observation(candidate=c, height=side, width=side, peak_gib=peak, step_s=step)


def test_measured_runs_correct_the_predictions_of_their_configuration():
    base = plan("h100")
    c, e = base.choice, base.estimate
    # this GPU measured the chosen configuration 10 % bigger and 20 % slower than predicted
    pin = dict(transformer=c.transformer, text_encoder=c.text_encoder_2, offload=c.offload.value,
               text_encoder_placement=c.text_encoder_placement.value, compile=c.compile.value)
    seen = plan("h100", observations=[_obs(c, e.peak_vram_gib * 1.10, e.latency.denoise_step_s * 1.20)], **pin)
    assert seen.choice == c
    assert seen.estimate.peak_vram_gib == pytest.approx(e.peak_vram_gib * 1.10, rel=1e-6)
    assert seen.estimate.latency.denoise_step_s == pytest.approx(e.latency.denoise_step_s * 1.20, rel=1e-6)
    assert any("corrected by 1 run" in n for n in seen.notes)
    # slower than measured, so an unpinned plan now prefers a configuration of the same quality that is not
    unpinned = plan("h100", observations=[_obs(c, e.peak_vram_gib * 1.10, e.latency.denoise_step_s * 1.20)])
    assert unpinned.estimate.quality == e.quality and unpinned.estimate.latency_s <= seen.estimate.latency_s
    # the same ratio carries to a nearby shape
    big = plan("h100", resolution="1536x1536", **pin)
    big_seen = plan("h100", resolution="1536x1536", **pin,
                    observations=[_obs(c, e.peak_vram_gib * 1.10, e.latency.denoise_step_s * 1.20)])
    assert big_seen.estimate.peak_vram_gib == pytest.approx(big.estimate.peak_vram_gib * 1.10, rel=1e-6)


def test_a_measurement_that_no_longer_fits_moves_the_plan():
    base = plan("4090", ram=64)
    c = base.choice
    # measured far above the card: the planner must not choose it again
    moved = plan("4090", ram=64, observations=[_obs(c, 30.0, base.estimate.latency.denoise_step_s)])
    assert moved.choice != c
    assert moved.estimate.peak_vram_gib <= moved.budget.usable_gib


def test_observations_far_from_the_request_are_ignored():
    base = plan("h100")
    far = plan("h100", observations=[_obs(base.choice, 100.0, 9.0, side=256)])  # 16x fewer tokens
    assert far.estimate.peak_vram_gib == pytest.approx(base.estimate.peak_vram_gib)


def test_a_profile_of_a_card_without_specs_serves_that_card_only():
    from fluxplan.cost.profile import bundled_profiles
    from fluxplan.models import GPU

    h100 = bundled_profiles()[0]
    mystery = h100.model_copy(update={"gpu": "NVIDIA Mystery GPU"})
    card = GPU(name="NVIDIA Mystery GPU", vram_gib=48, bf16_tflops=400, mem_bw_gbs=2000, pcie_gen=5, pcie_lanes=16,
               compute_capability=9.0)
    p = plan(card, profiles=[mystery, h100])
    assert p.profile == "NVIDIA Mystery GPU" and p.profile_measured_here
    other = plan("4090", profiles=[mystery, h100])  # cannot scale from a card without specs: the H100's serves
    assert other.profile == h100.gpu and not other.profile_measured_here


def test_t5_streamed_under_group_offload():
    """Placement `offload` under group offload streams T5 from host memory when encoding (diffusers' leaf-level
    recipe; run through fluxplan's builder on the H100 in the emulated-card matrix's fifth run). The planner offers
    it beside T5 on the CPU, prices the transfer at T5_STREAM_GIB_S, and counts what the allocator keeps of the
    stream after encoding in the later phases."""
    from fluxplan.cost.model import T5_STREAM_GIB_S, T5_STREAM_RESIDUE_GIB
    from fluxplan.models import TextEncoderPlacement

    # 8.9 GiB streamed at 40 GiB/s (0.22 s) against T5-XXL on a 3.8 TFLOP/s CPU (about 2 s): streaming wins
    free = plan("h100", ram=125, vram=8, cpu_tflops=3.8)
    assert free.choice.text_encoder_placement is TextEncoderPlacement.FOLLOWS_OFFLOAD
    pins = dict(transformer="bf16", text_encoder="bf16", offload="group-leaf", compile="none", vae_tiling=False)
    streamed = plan("h100", ram=125, vram=8, text_encoder_placement="offload", **pins)
    resident = plan("h100", ram=125, vram=40, text_encoder_placement="resident", **pins)
    on_cpu = plan("h100", ram=125, vram=8, text_encoder_placement="cpu", cpu_tflops=3.8, **pins)
    assert streamed.choice.label() == "bf16 + T5 bf16 (offload) + offload group-leaf"
    w_t5 = resident.estimate.memory.weights_gib.text_encoder_2
    extra = streamed.estimate.latency.text_encode_s - resident.estimate.latency.text_encode_s
    assert extra == pytest.approx(w_t5 / T5_STREAM_GIB_S, rel=1e-6)  # the H100's own PCIe: no scaling
    assert streamed.estimate.peak_vram_gib < resident.estimate.peak_vram_gib - 0.9 * w_t5
    # the same plan with T5 on the CPU peaks in the decode phase; streaming leaves its residue there
    assert streamed.estimate.peak_vram_gib == pytest.approx(on_cpu.estimate.peak_vram_gib + T5_STREAM_RESIDUE_GIB)


def test_a_quantized_format_at_batch_2_steps_as_measured_at_batch_2():
    """Dequantizing the weights is per call, not per image, so a GGUF step at batch 2 costs less than twice its
    batch-1 step. The step at a measured (tokens, batch) is that measurement, not the batch-1 factor doubled."""
    from fluxplan.cost.profile import load_profile_file

    prof = load_profile_file(Path(__file__).resolve().parents[1] / "profiles" / "nvidia-h100-80gb-hbm3.json")
    at = {p.batch: p for p in prof.forward
          if p.format == "gguf-q8_0" and p.compile == "none" and (p.image_tokens, p.text_tokens) == (4096, 512)}
    assert {1, 2} <= set(at) and at[2].seconds < 1.9 * at[1].seconds  # the measurements themselves
    pins = dict(transformer="gguf-q8_0", text_encoder="bf16", offload="none", compile="none", vae_tiling=False)
    one = plan("h100", ram=125, **pins)
    two = plan("h100", ram=125, batch=2, **pins)
    assert one.estimate.latency.denoise_step_s == pytest.approx(at[1].seconds, rel=1e-6)
    assert two.estimate.latency.denoise_step_s == pytest.approx(at[2].seconds, rel=1e-6)
