"""The GPU spec database (catalog/data/gpus.json) and its forgiving lookup (catalog/gpus.py)."""

from __future__ import annotations

import json
from collections import Counter
from importlib.resources import files

import pytest

from fluxplan.catalog.gpus import find_gpu, load_gpus, match_nvml_name, normalize
from fluxplan.errors import BadInput, UnknownGPU

GPUS = load_gpus()


def by_name(name: str):
    return next(g for g in GPUS if g.name == name)


# ---------------------------------------------------------------- the data


def test_database_is_large_enough():
    assert len(GPUS) >= 40


def test_names_and_aliases_are_unique_after_normalization():
    keys = [normalize(n) for g in GPUS for n in (g.name, *g.aliases)]
    dupes = [k for k, c in Counter(keys).items() if c > 1]
    assert not dupes, dupes
    assert all(keys), "a name or alias normalizes to nothing"


def test_every_row_says_where_its_numbers_come_from():
    for g in GPUS:
        assert g.source.strip(), g.name
        assert g.source.split(":")[0] in ("published", "derived", "measured"), g.name


def test_fp8_exactly_where_the_architecture_has_it():
    for g in GPUS:
        assert (g.fp8_tflops is None) == (g.compute_capability < 8.9), g.name


def test_figures_are_in_plausible_ranges():
    for g in GPUS:
        assert g.compute_capability in (7.0, 7.5, 8.0, 8.6, 8.9, 9.0, 10.0, 12.0), g.name
        assert 1 <= g.bf16_tflops <= 5000, g.name
        assert 100 <= g.mem_bw_gbs <= 10000, g.name
        if g.fp8_tflops is not None:  # dense fp8 is twice dense bf16 on Ada, Hopper and Blackwell
            assert g.fp8_tflops == pytest.approx(2 * g.bf16_tflops, rel=0.02), g.name
        if g.compute_capability < 8.0:  # no bf16 tensor cores: the field holds the FP32 rate
            assert "FP32" in g.source, g.name


def test_anchor_figures():
    """Spot values from NVIDIA's whitepapers and datasheets that latency predictions lean on."""
    rtx4090 = find_gpu("4090")
    assert (rtx4090.bf16_tflops, rtx4090.fp8_tflops, rtx4090.mem_bw_gbs) == (165.2, 330.3, 1008.0)
    assert rtx4090.vram_gib == pytest.approx(24564 / 1024, abs=0.01)
    h100 = find_gpu("h100")
    assert (h100.bf16_tflops, h100.fp8_tflops, h100.mem_bw_gbs, h100.pcie_gen, h100.compute_capability) == (
        989.4, 1978.9, 3350.0, 5, 9.0)
    assert h100.vram_gib == pytest.approx(81559 / 1024, abs=0.01)
    h200 = find_gpu("h200")
    assert (h200.bf16_tflops, h200.fp8_tflops, h200.mem_bw_gbs, h200.pcie_gen, h200.compute_capability) == (
        989.4, 1978.9, 4800.0, 5, 9.0)  # the H100 SXM's dense compute, more and faster memory
    assert h200.vram_gib == pytest.approx(143771 / 1024, abs=0.01)
    nvl = find_gpu("h200 nvl")
    assert (nvl.bf16_tflops, nvl.fp8_tflops, nvl.mem_bw_gbs) == (835.5, 1670.5, 4800.0)
    for nvml, want in (("NVIDIA H200", h200), ("NVIDIA H200 NVL", nvl)):  # as NVML names them
        assert match_nvml_name(nvml, 143771) == want
    a100 = find_gpu("a100")
    assert (a100.bf16_tflops, a100.fp8_tflops, a100.mem_bw_gbs, a100.compute_capability) == (312.0, None, 2039.0, 8.0)
    l4 = find_gpu("l4")
    assert (l4.bf16_tflops, l4.fp8_tflops, l4.mem_bw_gbs, l4.pcie_gen, l4.pcie_lanes) == (121.0, 242.5, 300.0, 4, 16)
    a10 = find_gpu("a10")
    assert (a10.bf16_tflops, a10.mem_bw_gbs, a10.compute_capability) == (125.0, 600.0, 8.6)
    for narrow in ("4060", "4060 ti", "4060 ti 16gb", "5060 ti"):
        assert find_gpu(narrow).pcie_lanes == 8, narrow


# Marketing size in GB; ECC-on GDDR6 datacenter parts (A10, L4) lose 1/16 to inline ECC in NVML's total.
VRAM_TIERS = [
    ("3060", 12, False),
    ("4060 laptop", 8, False),
    ("4090", 24, False),
    ("a10", 24, True),
    ("l4", 24, True),
    ("a100", 80, False),
    ("h100", 80, False),
    ("h200", 141, False),
]


@pytest.mark.parametrize("name,marketing_gb,ecc", VRAM_TIERS)
def test_vram_matches_marketing_size(name, marketing_gb, ecc):
    expected = marketing_gb * (15 / 16 if ecc else 1)
    assert find_gpu(name).vram_gib == pytest.approx(expected, rel=0.03)


# ---------------------------------------------------------------- the lookup


@pytest.mark.parametrize(
    "typed,canonical",
    [
        ("4090", "NVIDIA GeForce RTX 4090"),
        ("RTX 4090", "NVIDIA GeForce RTX 4090"),
        ("rtx4090", "NVIDIA GeForce RTX 4090"),
        ("nvidia_geforce_rtx-4090", "NVIDIA GeForce RTX 4090"),
        ("RTX 4090 Laptop", "NVIDIA GeForce RTX 4090 Laptop GPU"),
        ("4090 lap", "NVIDIA GeForce RTX 4090 Laptop GPU"),
        ("4060 laptop", "NVIDIA GeForce RTX 4060 Laptop GPU"),
        ("RTX 4060 Mobile", "NVIDIA GeForce RTX 4060 Laptop GPU"),
        ("4060m", "NVIDIA GeForce RTX 4060 Laptop GPU"),
        ("4060", "NVIDIA GeForce RTX 4060"),
        ("4070 ti sup", "NVIDIA GeForce RTX 4070 Ti SUPER"),
        ("h100", "NVIDIA H100 80GB HBM3"),
        ("H100 SXM", "NVIDIA H100 80GB HBM3"),
        ("H100 PCIe", "NVIDIA H100 PCIe"),
        ("h100 80gb pcie", "NVIDIA H100 PCIe"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"),
        ("a100", "NVIDIA A100-SXM4-80GB"),
        ("A100 80GB", "NVIDIA A100-SXM4-80GB"),
        ("a100 40gb", "NVIDIA A100-PCIE-40GB"),
        ("3060", "NVIDIA GeForce RTX 3060"),
        ("rtx 3060 8gb", "NVIDIA GeForce RTX 3060 8GB"),
        ("RTX 3080 12 GB", "NVIDIA GeForce RTX 3080 12GB"),
        ("a10", "NVIDIA A10"),
        ("A10G", "NVIDIA A10G"),
        ("t4", "Tesla T4"),
        ("v100", "Tesla V100-SXM2-16GB"),
        ("rtx 6000 ada", "NVIDIA RTX 6000 Ada Generation"),
    ],
)
def test_find_gpu_resolves(typed, canonical):
    assert find_gpu(typed).name == canonical


@pytest.mark.parametrize(
    "typed,intended",
    [("4009", "NVIDIA GeForce RTX 4090"), ("rtx 4900", "NVIDIA GeForce RTX 4090"), ("h1000", "NVIDIA H100 80GB HBM3")],
)
def test_unknown_names_suggest_the_intended_card(typed, intended):
    with pytest.raises(UnknownGPU) as exc:
        find_gpu(typed)
    assert intended in exc.value.suggestions
    assert len(exc.value.suggestions) <= 3
    assert exc.value.suggestions[0] == intended


def test_nonsense_raises_unknown_gpu_without_inventing_matches():
    with pytest.raises(UnknownGPU) as exc:
        find_gpu("voodoo banshee")
    assert exc.value.suggestions == []
    with pytest.raises(UnknownGPU):
        find_gpu("")


def test_ambiguous_fragment_is_not_silently_resolved():
    with pytest.raises(UnknownGPU) as exc:
        find_gpu("rtx 40")
    assert len(exc.value.suggestions) > 1


# ---------------------------------------------------------------- NVML names


@pytest.mark.parametrize(
    "nvml,mib,canonical",
    [
        ("NVIDIA GeForce RTX 3060", 12288, "NVIDIA GeForce RTX 3060"),
        ("NVIDIA GeForce RTX 3060", 8192, "NVIDIA GeForce RTX 3060 8GB"),
        ("NVIDIA GeForce RTX 3080", 12288, "NVIDIA GeForce RTX 3080 12GB"),
        ("NVIDIA GeForce RTX 4060 Ti", 16380, "NVIDIA GeForce RTX 4060 Ti 16GB"),
        ("NVIDIA GeForce RTX 4060 Ti", 8188, "NVIDIA GeForce RTX 4060 Ti"),
        ("NVIDIA GeForce RTX 3080 Laptop GPU", 16384, "NVIDIA GeForce RTX 3080 Laptop GPU 16GB"),
        ("GeForce RTX 2080 Ti", 11264, "NVIDIA GeForce RTX 2080 Ti"),  # older drivers omit "NVIDIA"
        ("NVIDIA H100 80GB HBM3", 81559, "NVIDIA H100 80GB HBM3"),
        ("NVIDIA H100 PCIe", 81559, "NVIDIA H100 PCIe"),
        ("NVIDIA A100-SXM4-40GB", 40960, "NVIDIA A100-SXM4-40GB"),
        ("Tesla T4", 15360, "Tesla T4"),
        ("NVIDIA L4", None, "NVIDIA L4"),
        ("NVIDIA GeForce RTX 3060", None, "NVIDIA GeForce RTX 3060"),
    ],
)
def test_match_nvml_name(nvml, mib, canonical):
    gpu = match_nvml_name(nvml, mib)
    assert gpu is not None and gpu.name == canonical


def test_match_nvml_name_returns_none_for_unknown_devices():
    assert match_nvml_name("NVIDIA GeForce RTX 3070 Ti Laptop GPU", 8192) is None
    assert match_nvml_name("NVIDIA A100-SXM4-80GB MIG 1g.10gb", 9984) is None
    assert match_nvml_name("Quadro P5000", 16384) is None


# ---------------------------------------------------------------- loading


def test_packaged_file_is_the_one_loaded():
    doc = json.loads((files("fluxplan.catalog") / "data" / "gpus.json").read_text(encoding="utf-8"))
    assert doc["schema"] == 1
    assert [r["name"] for r in doc["gpus"]] == [g.name for g in GPUS]
    assert all(set(r) == set(doc["gpus"][0]) for r in doc["gpus"])  # every row has the same keys


def _write(tmp_path, rows, name="gpus.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"schema": 1, "gpus": rows}), encoding="utf-8")
    return path


def _good_row(**over):
    row = by_name("NVIDIA L4").model_dump(mode="json")
    row.update(over)
    return row


def test_custom_path_loads(tmp_path):
    path = _write(tmp_path, [_good_row(), _good_row(name="Test GPU", aliases=["tgpu"])])
    assert [g.name for g in load_gpus(path)] == ["NVIDIA L4", "Test GPU"]


def test_corrupt_row_names_file_row_and_field(tmp_path):
    path = _write(tmp_path, [_good_row(), _good_row(name="Broken GPU", aliases=[], vram_gib="lots")], "bad.json")
    with pytest.raises(BadInput) as exc:
        load_gpus(path)
    message = str(exc.value)
    assert "bad.json" in message and "row 1" in message and "Broken GPU" in message and "vram_gib" in message


def test_missing_and_unknown_fields_are_named(tmp_path):
    row = _good_row()
    del row["mem_bw_gbs"]
    with pytest.raises(BadInput, match="mem_bw_gbs"):
        load_gpus(_write(tmp_path, [row], "missing.json"))
    with pytest.raises(BadInput, match="tdp_w"):
        load_gpus(_write(tmp_path, [_good_row(tdp_w=72)], "extra.json"))


def test_duplicate_alias_across_rows_is_rejected(tmp_path):
    path = _write(tmp_path, [_good_row(), _good_row(name="Other", aliases=["L-4"])], "dupe.json")
    with pytest.raises(BadInput, match="l4"):
        load_gpus(path)


def test_not_json_or_wrong_schema(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(BadInput, match="broken.json"):
        load_gpus(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"schema": 2, "gpus": []}), encoding="utf-8")
    with pytest.raises(BadInput, match="schema"):
        load_gpus(wrong)


def test_no_torch_import():
    import subprocess
    import sys

    code = "import sys; import fluxplan.catalog.gpus as g; g.find_gpu('4090'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
