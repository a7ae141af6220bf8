"""The GPU spec database (data/gpus.json) and a forgiving name lookup.

`find_gpu` resolves what a user types ("4090", "rtx 4060 laptop", "H100 PCIe", "a100 40gb");
`match_nvml_name` resolves what NVML reports for a probed device, using its total memory to pick
among VRAM variants that NVML names alike ("NVIDIA GeForce RTX 3060" is sold with 8 and 12 GB).

Names are compared normalized: lower case, "nvidia", "geforce" and "tesla" dropped, every character
that is not a letter or digit dropped, "laptop gpu" and "mobile" read as "laptop". Light imports only:
this runs on every `fluxplan explain`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from os import PathLike

from pydantic import ValidationError

from fluxplan.catalog import data
from fluxplan.errors import BadInput, UnknownGPU
from fluxplan.models import GPU

# A memory size written as its own token: "12GB", "80 GB", "-40GB", "24 GiB" (not the "2" of "sxm2-16gb").
_MEM = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*gi?b(?![a-z0-9])")
_DROP = ("nvidia", "geforce", "tesla")


def normalize(text: str, strip_memory: bool = False) -> str:
    """The comparison form of a GPU name (see the module docstring); optionally without its memory size."""
    s = text.lower()
    if strip_memory:
        s = _MEM.sub(" ", s)
    for word in _DROP:
        s = s.replace(word, " ")
    s = re.sub(r"[^a-z0-9]", "", s)
    return s.replace("laptopgpu", "laptop").replace("mobile", "laptop")


def memory_gb(text: str) -> float | None:
    """The memory size written in a name ("RTX 3060 8GB" -> 8.0), or None."""
    m = _MEM.search(text.lower())
    return float(m.group(1)) if m else None


def _keys(gpu: GPU) -> list[str]:
    """The normalized canonical name and aliases of a row, without repeats."""
    return list(dict.fromkeys(normalize(n) for n in (gpu.name, *gpu.aliases)))


@lru_cache(maxsize=8)
def _load(path: str | None) -> tuple[GPU, ...]:
    where = str(data.DATA / "gpus.json") if path is None else path
    try:
        with open(where, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise BadInput(f"{where}: cannot read the GPU database: {e}") from e
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"{where}: not valid JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("schema") != 1 or not isinstance(doc.get("gpus"), list):
        raise BadInput(f'{where}: expected {{"schema": 1, "gpus": [...]}}')

    gpus: list[GPU] = []
    owner: dict[str, int] = {}
    for i, row in enumerate(doc["gpus"]):
        label = f"row {i}" + (f" ({row['name']!r})" if isinstance(row, dict) and "name" in row else "")
        if not isinstance(row, dict):
            raise BadInput(f"{where}: {label}: expected an object, got {type(row).__name__}")
        try:
            gpu = GPU.model_validate(row)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "(row)"
            raise BadInput(f"{where}: {label}: field {field!r}: {err['msg']}") from e
        for key in _keys(gpu):
            if key in owner:
                raise BadInput(f"{where}: {label}: name or alias {key!r} already belongs to row {owner[key]}")
            owner[key] = i
        gpus.append(gpu)
    return tuple(gpus)


def load_gpus(path: str | PathLike[str] | None = None) -> list[GPU]:
    """Every GPU of the database (the packaged data/gpus.json, or `path`); cached per path.

    A row that does not validate raises BadInput naming the file, the row and the field."""
    return list(_load(None if path is None else str(path)))


@dataclass(frozen=True)
class _Index:
    exact: dict[str, GPU]  # normalized name or alias -> row
    keys: tuple[tuple[str, str, GPU], ...]  # (normalized key, the same without memory size, row)
    groups: dict[str, tuple[GPU, ...]]  # canonical name without memory size -> its VRAM variants


@lru_cache(maxsize=1)
def _index() -> _Index:
    exact: dict[str, GPU] = {}
    keys: list[tuple[str, str, GPU]] = []
    groups: dict[str, list[GPU]] = {}
    for gpu in load_gpus():
        for name in (gpu.name, *gpu.aliases):
            key = normalize(name)
            if key not in exact:
                exact[key] = gpu
                keys.append((key, normalize(name, strip_memory=True), gpu))
        groups.setdefault(normalize(gpu.name, strip_memory=True), []).append(gpu)
    return _Index(exact, tuple(keys), {k: tuple(v) for k, v in groups.items()})


def _unique(gpus: list[GPU]) -> list[GPU]:
    return list({g.name: g for g in gpus}.values())


def _by_memory(gpus: list[GPU], gib: float, tolerance: float) -> GPU | None:
    """The row whose VRAM is nearest `gib`, if within `tolerance` (relative) and not tied."""
    ranked = sorted(gpus, key=lambda g: abs(g.vram_gib - gib))
    if not ranked or abs(ranked[0].vram_gib - gib) > tolerance * gib:
        return None
    if len(ranked) > 1 and abs(ranked[1].vram_gib - gib) == abs(ranked[0].vram_gib - gib):
        return None
    return ranked[0]


def find_gpu(name: str) -> GPU:
    """Resolve a GPU name as a user writes it; raise UnknownGPU (with suggestions) if none or several fit.

    Order: exact name or alias; a written memory size choosing among variants ("rtx 3080 12gb");
    a unique row with a name or alias containing the query ("4090 lap"); else suggestions."""
    idx = _index()
    q = normalize(name)
    if not q:
        raise UnknownGPU(name, [])
    if q in idx.exact:
        return idx.exact[q]

    gb = memory_gb(name)
    if gb is not None:
        qb = normalize(name, strip_memory=True)
        same = _unique([g for _, kb, g in idx.keys if kb == qb])
        same = same or _unique([g for _, kb, g in idx.keys if qb and qb in kb])
        # Marketing GB against NVML GiB: ECC parts report 1/16 less, so allow 10 %.
        hit = _by_memory(same, gb, tolerance=0.10)
        if hit is not None:
            return hit

    containing = [(len(k), g) for k, _, g in idx.keys if q in k]
    found = _unique([g for _, g in sorted(containing, key=lambda t: t[0])])
    if len(found) == 1:
        return found[0]
    if found:  # ambiguous: offer the rows whose matching names are closest in length to the query
        raise UnknownGPU(name, [g.name for g in found[:3]])
    raise UnknownGPU(name, suggest(name))


def suggest(name: str, n: int = 3) -> list[str]:
    """Up to n canonical names close to `name` (difflib over normalized names and aliases).

    Among equally close keys, one with the same characters in another order (a transposition: "4009"
    for "4090") ranks first."""
    import difflib

    idx = _index()
    q = normalize(name)
    if not q:
        return []
    close = difflib.get_close_matches(q, list(idx.exact), n=len(idx.exact), cutoff=0.6)
    bonus = {k: 0.1 if sorted(k) == sorted(q) else 0.0 for k in close}
    scored = [(difflib.SequenceMatcher(None, q, k).ratio() + bonus[k], k) for k in close]
    scored.sort(key=lambda t: -t[0])
    return list(dict.fromkeys(idx.exact[k].name for _, k in scored))[:n]


def match_nvml_name(nvml_name: str, total_mib: float | None) -> GPU | None:
    """The database row for a device as NVML names it, or None.

    NVML gives several VRAM variants one name; `total_mib` (NVML's memory total) picks the nearest.
    The caller should still budget with the probed memory: ECC settings move the total by 1/16."""
    idx = _index()
    gpu = idx.exact.get(normalize(nvml_name))
    if gpu is not None:
        group = idx.groups.get(normalize(gpu.name, strip_memory=True), (gpu,))
    else:
        group = idx.groups.get(normalize(nvml_name, strip_memory=True), ())
        if not group:
            return None
        # With no memory to go by, prefer the variant whose name carries no size (the base model).
        gpu = next((g for g in group if memory_gb(g.name) is None), group[0])
    if total_mib is None or len(group) == 1:
        return gpu
    return min(group, key=lambda g: abs(g.vram_gib - total_mib / 1024))
