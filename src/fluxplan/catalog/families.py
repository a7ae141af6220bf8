"""FLUX model families and their parameter counts, derived from the component configs in data/families.json.

Counts are split by layer kind, because backends quantize some kinds and keep others in high precision:
`linear` (attention and MLP weights in the blocks), `modulation` (AdaLN Linears, which layerwise casting
skips because their names contain "norm"), `embed` (the transformer's embedders and final projection), `t5_embed`
(T5's token embedding, which no backend here quantizes: they replace Linear layers, and layerwise casting skips it),
`t5_wo` (T5's feed-forward output weights, which some backends keep out of quantization) and `hp` (biases and norms).
A test checks these formulas against diffusers' and transformers' real modules at the tiny scale.
"""

from __future__ import annotations

import json
from functools import cached_property, lru_cache

from pydantic import BaseModel, ConfigDict

from fluxplan.catalog import data
from fluxplan.errors import UnknownModel

GIB = 1024**3


class LayerCounts(BaseModel):
    """Parameter counts of one component by layer kind (see the module docstring)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    linear: int  # Linear weights inside the blocks: attention and MLP
    modulation: int = 0  # AdaLN modulation Linears (named *norm*: layerwise casting skips them)
    embed: int = 0  # the transformer's embedders and final projection
    t5_embed: int = 0  # T5's token embedding (kept in the pipeline's dtype by every backend here)
    t5_wo: int = 0  # T5 feed-forward output weights (bitsandbytes and layerwise casting keep them unquantized)
    hp: int = 0  # biases and norm weights: always high precision

    @property
    def total(self) -> int:
        return self.linear + self.modulation + self.embed + self.t5_embed + self.t5_wo + self.hp

    def items(self) -> list[tuple[str, int]]:
        return [("linear", self.linear), ("modulation", self.modulation), ("embed", self.embed),
                ("t5_embed", self.t5_embed), ("t5_wo", self.t5_wo), ("hp", self.hp)]


class Family(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    key: str
    title: str
    hub_id: str | None
    aliases: tuple[str, ...]
    default_steps: int
    default_guidance: float
    max_sequence_length: int
    context_image_tokens: int = 0
    source: str
    transformer: dict
    text_encoder_2: dict
    text_encoder: dict
    vae: dict

    @cached_property
    def transformer_params(self) -> LayerCounts:
        return transformer_counts(self.transformer)

    @cached_property
    def t5_params(self) -> LayerCounts:
        return t5_counts(self.text_encoder_2)

    @cached_property
    def clip_params(self) -> int:
        return clip_count(self.text_encoder)

    @cached_property
    def vae_params(self) -> int:
        return vae_count(self.vae)


def transformer_counts(c: dict) -> LayerCounts:
    d = c["num_attention_heads"] * c["attention_head_dim"]
    hd, mlp = c["attention_head_dim"], 4 * d
    n_double, n_single = c["num_layers"], c["num_single_layers"]
    # double-stream block: q,k,v + added q,k,v, two output projections, two MLPs (d->4d->d)
    linear = n_double * (8 * d * d + 2 * 2 * d * mlp) + n_single * (3 * d * d + d * mlp + (d + mlp) * d)
    # AdaLN-Zero: 2 x (d -> 6d) per double block, d -> 3d per single block, norm_out d -> 2d
    modulation = n_double * 2 * 6 * d * d + n_single * 3 * d * d + d * 2 * d
    out_ch = (c.get("out_channels") or c["in_channels"]) * c.get("patch_size", 1) ** 2
    embed_in = [c["in_channels"], c["joint_attention_dim"], 256, d, c["pooled_projection_dim"], d]
    if c.get("guidance_embeds"):
        embed_in += [256, d]
    embed = sum(i * d for i in embed_in) + d * out_ch
    bias = (n_double * (2 * 6 * d + 8 * d + 2 * (mlp + d)) + n_single * (3 * d + 3 * d + mlp + d)
            + len(embed_in) * d + 2 * d + out_ch)
    norms = n_double * 4 * hd + n_single * 2 * hd
    return LayerCounts(linear=linear, modulation=modulation, embed=embed, hp=bias + norms)


def t5_counts(c: dict) -> LayerCounts:
    d, ff, inner = c["d_model"], c["d_ff"], c["num_heads"] * c["d_kv"]
    n_wi = 2 if c.get("is_gated_act", "gated" in c.get("feed_forward_proj", "")) else 1
    layers = c["num_layers"]
    linear = layers * (4 * d * inner + n_wi * d * ff)  # q, k, v, o and wi (no biases in T5)
    norms = layers * 2 * d + d + c["relative_attention_num_buckets"] * c["num_heads"]
    return LayerCounts(linear=linear, t5_wo=layers * ff * d, t5_embed=c["vocab_size"] * d, hp=norms)


def clip_count(c: dict) -> int:
    d, ff = c["hidden_size"], c["intermediate_size"]
    per_layer = 4 * (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * 2 * d
    return c["num_hidden_layers"] * per_layer + c["vocab_size"] * d + c["max_position_embeddings"] * d + 2 * d


def _resnet(i: int, o: int, groups_affine: bool = True) -> int:
    n = 2 * i + i * o * 9 + o + 2 * o + o * o * 9 + o
    if i != o:
        n += i * o + o
    return n


def vae_count(c: dict) -> int:
    ch = c["block_out_channels"]
    lat, inc, outc, layers = c["latent_channels"], c["in_channels"], c["out_channels"], c["layers_per_block"]
    n = 0
    # encoder
    n += inc * ch[0] * 9 + ch[0]
    prev = ch[0]
    for i, o in enumerate(ch):
        for j in range(layers):
            n += _resnet(prev if j == 0 else o, o)
        prev = o
        if i < len(ch) - 1:
            n += o * o * 9 + o  # downsample conv
    top = ch[-1]
    n += 2 * _resnet(top, top) + 2 * top + 4 * (top * top + top)  # mid block + attention
    n += 2 * top + top * 2 * lat * 9 + 2 * lat
    # decoder
    n += lat * top * 9 + top
    n += 2 * _resnet(top, top) + 2 * top + 4 * (top * top + top)
    rev = list(reversed(ch))
    prev = top
    for i, o in enumerate(rev):
        for j in range(layers + 1):
            n += _resnet(prev if j == 0 else o, o)
        prev = o
        if i < len(rev) - 1:
            n += o * o * 9 + o  # upsample conv
    n += 2 * ch[0] + ch[0] * outc * 9 + outc
    if c.get("use_quant_conv"):
        n += (2 * lat) ** 2 + 2 * lat
    if c.get("use_post_quant_conv"):
        n += lat * lat + lat
    return n


@lru_cache(maxsize=1)
def load_families() -> dict[str, Family]:
    raw = json.loads(data.read("families.json"))
    return {key: Family(key=key, **{**v, "aliases": tuple(v.get("aliases", ()))}) for key, v in raw["families"].items()}


def find_family(name: str) -> Family:
    """Resolve "dev", "schnell", "FLUX.1-dev", a hub id or "synthetic:tiny" to a family."""
    fams = load_families()
    key = name.strip().lower()
    if key.startswith("synthetic:"):
        key = key.split(":", 1)[1]
    if key in fams:
        return fams[key]
    for fam in fams.values():
        if key in fam.aliases or (fam.hub_id and key == fam.hub_id.lower()):
            return fam
    # a path or hub id naming a family ("/models/FLUX.1-schnell", "someone/flux1-dev-nf4")
    tail = key.rstrip("/").rsplit("/", 1)[-1]
    for fam in fams.values():
        if tail in fam.aliases or fam.key in tail.replace("_", "-").split("-"):
            return fam
    known = ", ".join(k for k in fams if k != "tiny")
    raise UnknownModel(f"unknown model {name!r}: known families are {known} (or synthetic:tiny|dev|schnell)")
