"""Properties the planner must keep for any card and request (hypothesis)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluxplan import plan
from fluxplan.errors import Infeasible
from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
sizes = st.sampled_from([512, 768, 1024, 1280, 1536, 2048])


def _quality(gpu, vram, **kw):
    try:
        return plan(gpu, vram=vram, ram=64, **kw).estimate.quality
    except Infeasible:
        return -1.0


@SETTINGS
@given(a=st.floats(4, 141), b=st.floats(4, 141), side=sizes)
def test_a_larger_card_never_gets_a_lower_quality_plan(a, b, side):
    small, large = sorted((a, b))
    res = f"{side}x{side}"
    assert _quality("h100", large, resolution=res) >= _quality("h100", small, resolution=res)


@SETTINGS
@given(vram=st.floats(4, 141), side=sizes, batch=st.integers(1, 3),
       gpu=st.sampled_from(["h100", "4090", "3060", "4060 laptop", "a10", "l4", "5090", "a100 40gb"]))
def test_every_chosen_plan_fits_what_it_was_given(vram, side, batch, gpu):
    try:
        p = plan(gpu, vram=vram, ram=64, resolution=f"{side}x{side}", batch=batch)
    except Infeasible:
        return
    assert p.estimate.peak_vram_gib <= vram - p.budget.margin_gib
    assert p.estimate.host_ram_gib <= 64
    for alt in p.alternatives + p.pareto:
        assert alt.estimate.peak_vram_gib <= vram - p.budget.margin_gib


CANDIDATES = st.builds(
    Candidate,
    transformer=st.sampled_from(["bf16", "fp8-layerwise", "torchao-int8wo", "bnb-nf4", "gguf-q8_0", "gguf-q4_0"]),
    text_encoder_2=st.sampled_from(["bf16", "bnb-nf4", "quanto-int8"]),
    text_encoder_placement=st.sampled_from([TextEncoderPlacement.RESIDENT, TextEncoderPlacement.FREE_AFTER_ENCODE]),
    offload=st.sampled_from([Offload.NONE, Offload.GROUP_LEAF, Offload.GROUP_BLOCK]),
    compile=st.sampled_from([Compile.NONE]),
    vae_tiling=st.booleans(),
)


@SETTINGS
@given(c=CANDIDATES, w1=sizes, h1=sizes, w2=sizes, h2=sizes, batch=st.integers(1, 4))
def test_a_larger_image_never_predicts_less_memory(c, w1, h1, w2, h2, batch):
    from fluxplan.catalog.gpus import find_gpu
    from fluxplan.cost.model import CostModel
    from fluxplan.cost.profile import bundled_profiles
    from fluxplan.models import Host, Request

    if w1 * h1 > w2 * h2:
        (w1, h1), (w2, h2) = (w2, h2), (w1, h1)
    if not (w1 <= w2 and h1 <= h2):
        return  # only compare when one image contains the other
    prof = bundled_profiles()[0]
    gpu = find_gpu("4090")

    def peak(w, h):
        return CostModel(Request(width=w, height=h, batch=batch), gpu, Host(), prof, find_gpu(prof.gpu)).terms(c).peak

    assert peak(w2, h2) >= peak(w1, h1) - 1e-9


@pytest.mark.parametrize("gpu", ["h100", "4090", "4060 laptop"])
def test_pareto_front_is_monotone(gpu):
    p = plan(gpu, ram=64)
    pts = [(a.estimate.latency_s, a.estimate.quality) for a in p.pareto]
    assert pts == sorted(pts)
    assert all(q1 < q2 for (_, q1), (_, q2) in zip(pts, pts[1:]))
    assert p.estimate.quality == max(q for _, q in pts)
