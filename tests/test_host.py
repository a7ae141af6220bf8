"""The host's figures the planner costs with: the CPU's measured bf16 rate (run.hostprobe, cached per CPU and torch
version), T5 placement `free` paying to move T5 off the GPU, and a batch of N making N images."""

from __future__ import annotations

import json

import pytest

from fluxplan.planner import plan
from fluxplan.run import hostprobe

T5_CPU_OFFLOADED = dict(transformer="bf16", text_encoder="bf16", text_encoder_placement="cpu", offload="group-leaf",
                        compile="none", vae_tiling=False)
T5_CPU = dict(transformer="bf16", text_encoder="bf16", text_encoder_placement="cpu", offload="none",
              compile="none", vae_tiling=False)


def _rates(bf16: float, fp32: float):
    return lambda budget_s=0.5, dtype="bfloat16": {"bfloat16": bf16, "float32": fp32}[dtype]


def test_the_cpu_rate_is_measured_once_and_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLUXPLAN_CACHE", str(tmp_path))
    monkeypatch.setattr(hostprobe, "measure_cpu_tflops", _rates(1.25, 0.4))
    assert hostprobe.cpu_rate() == (1.25, "bfloat16")
    cached = json.loads((tmp_path / "host.json").read_text())
    assert cached["cpu_tflops"] == 1.25 and cached["rates"] == {"bfloat16": 1.25, "float32": 0.4}

    def boom(*a, **k):
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(hostprobe, "measure_cpu_tflops", boom)
    assert hostprobe.cpu_rate() == (1.25, "bfloat16")
    assert hostprobe.cached_cpu_rate() == (1.25, "bfloat16")


def test_a_cpu_without_fast_bf16_runs_t5_in_float32(tmp_path, monkeypatch):
    """AVX2-only CPUs (this development machine: 0.0013 TFLOP/s in bf16, 0.12 in float32) run T5 in float32."""
    monkeypatch.setenv("FLUXPLAN_CACHE", str(tmp_path))
    monkeypatch.setattr(hostprobe, "measure_cpu_tflops", _rates(0.0013, 0.12))
    assert hostprobe.cpu_rate() == (0.12, "float32")
    assert hostprobe.cached_cpu_rate() == (0.12, "float32")


def test_a_cache_from_another_cpu_or_torch_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("FLUXPLAN_CACHE", str(tmp_path))
    (tmp_path / "host.json").write_text(json.dumps({"key": "some other CPU | 4 threads | torch 0.1", "cpu_tflops": 9.0,
                                                    "cpu_dtype": "bfloat16"}))
    monkeypatch.setattr(hostprobe, "measure_cpu_tflops", _rates(0.5, 0.1))
    assert hostprobe.cpu_rate() == (0.5, "bfloat16")


def test_t5_in_float32_on_the_cpu_takes_twice_the_host_memory():
    from fluxplan.catalog.families import GIB, find_family

    bf16 = plan("h100", ram=125, vram=8, cpu_tflops=1.0, **T5_CPU_OFFLOADED)
    fp32 = plan("h100", ram=125, vram=8, cpu_tflops=1.0, cpu_dtype="float32", **T5_CPU_OFFLOADED)
    assert (bf16.host.cpu_dtype, fp32.host.cpu_dtype) == ("bfloat16", "float32")
    two_more_bytes = find_family("dev").t5_params.total * 2 / GIB  # T5-XXL: 8.9 GiB more in float32
    assert fp32.estimate.host_ram_gib - bf16.estimate.host_ram_gib == pytest.approx(two_more_bytes, abs=0.01)
    assert fp32.estimate.latency.text_encode_s == pytest.approx(bf16.estimate.latency.text_encode_s)  # same rate
    assert any("in float32" in n for n in fp32.notes) and not any("in float32" in n for n in bf16.notes)


def test_the_probe_grows_to_t5s_feed_forward_matmul_only_while_within_its_budget(monkeypatch):
    import torch

    shapes = []
    real = torch.matmul

    def matmul(a, b):
        shapes.append((a.shape[0], a.shape[1], b.shape[1]))
        return real(a, b)

    monkeypatch.setattr(torch, "matmul", matmul)
    assert hostprobe.measure_cpu_tflops(budget_s=0.0) > 0  # no budget: the first, smallest size only
    assert set(shapes) == {(8, 4096, 160)}
    shapes.clear()
    monkeypatch.setattr(hostprobe, "N", 1024)  # T5's 10240 in spirit; smaller keeps this test quick here
    hostprobe.measure_cpu_tflops(budget_s=1e9)  # no limit: every size up to T5's prompt length
    assert sorted(set(shapes)) == [(8, 4096, 16), (32, 4096, 64), (128, 4096, 256), (512, 4096, 1024)]


def test_t5_on_the_cpu_costs_the_measured_rate():
    slow = plan("h100", ram=64, cpu_tflops=0.5, **T5_CPU).estimate.latency.text_encode_s
    fast = plan("h100", ram=64, cpu_tflops=2.0, **T5_CPU).estimate.latency.text_encode_s
    assert slow == pytest.approx(4 * fast)
    batch = plan("h100", ram=64, cpu_tflops=2.0, batch=2, **T5_CPU).estimate.latency.text_encode_s
    assert batch == pytest.approx(fast)  # one prompt per call, repeated for the batch


def test_placement_free_pays_for_moving_t5_and_clip_off_the_gpu():
    pins = dict(transformer="bf16", text_encoder="bf16", offload="none", compile="none", vae_tiling=False)
    resident = plan("h100", ram=64, text_encoder_placement="resident", **pins)
    free = plan("h100", ram=64, text_encoder_placement="free", **pins)
    moved = resident.estimate.memory.weights_gib.text_encoder_2 + resident.estimate.memory.weights_gib.text_encoder
    extra = free.estimate.latency.text_encode_s - resident.estimate.latency.text_encode_s
    assert extra == pytest.approx(moved / free.host.unload_gib_s, rel=1e-6)


def test_a_batch_makes_at_least_that_many_images():
    assert plan("h100", ram=64, batch=2).request.images == 2
    assert plan("h100", ram=64, batch=2, images=5).request.images == 5


def test_runs_that_encoded_on_this_cpu_set_its_rate():
    from fluxplan.catalog.families import find_family
    from fluxplan.models import Candidate, Compile, Observation, Offload, TextEncoderPlacement

    fam = find_family("dev")
    cpu = Candidate("bf16", "bf16", TextEncoderPlacement.CPU, Offload.GROUP_LEAF, Compile.NONE, False)
    resident = Candidate("bf16", "bf16", TextEncoderPlacement.RESIDENT, Offload.NONE, Compile.NONE, False)
    seen = [Observation(candidate=cpu, height=1024, width=1024, encode_s=1.6),
            Observation(candidate=resident, height=1024, width=1024, encode_s=0.04)]  # a GPU encode says nothing
    p = plan("h100", ram=64, cpu_tflops=0.5, observations=seen, **T5_CPU)
    expected = 2 * fam.t5_params.total * fam.max_sequence_length / 1.6 / 1e12
    assert p.host.cpu_tflops == pytest.approx(expected)
    assert p.estimate.latency.text_encode_s == pytest.approx(1.6)
    assert any("1 run(s) here encoded" in n for n in p.notes)
