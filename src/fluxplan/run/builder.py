"""Build a ready FluxPipeline for a Candidate: weight formats (run.backends), then placement (run.placement).

    built = build(candidate, "/path/to/pipeline-dir" or "black-forest-labs/FLUX.1-dev", device="cuda")
    built.pipe(prompt, ...)

The transformer and T5 formats become one `PipelineQuantizationConfig(quant_mapping=...)` for
`FluxPipeline.from_pretrained`, a transformer loaded with `from_single_file` (GGUF), or post-load hooks
(layerwise casting). Problems the user can act on come out as one-line FluxplanErrors: ModelLoadError (missing
directory, component, or a corrupt file, named), MissingPackage, NoGPU, UnknownFormat, BadInput.
"""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluxplan.errors import BadInput, FluxplanError, MissingPackage, ModelLoadError, NoGPU
from fluxplan.models import Candidate, Compile, Offload, TextEncoderPlacement
from fluxplan.run import backends, placement
from fluxplan.run.backends import TEXT_ENCODER_2, TRANSFORMER, BackendFamily

if TYPE_CHECKING:
    import torch

free_text_encoders = placement.free_text_encoders
WEIGHT_COMPONENTS = ("transformer", "text_encoder", "text_encoder_2", "vae")


@dataclass
class Built:
    pipe: Any  # diffusers.FluxPipeline
    load_s: float  # from_pretrained, quantization included
    setup_s: float  # offload hooks, compile wrapping, tiling
    notes: list[str] = field(default_factory=list)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def is_local(model: str | Path) -> bool:
    """A path (existing, or written like one) rather than a hub id 'owner/name'."""
    text = str(model)
    if isinstance(model, Path) or Path(text).expanduser().exists():
        return True
    return text.startswith(("/", ".", "~")) or text.count("/") != 1


def check_safetensors(file: Path) -> None:
    """Open the file's header with safetensors (memory-mapped, no tensor read): truncated or corrupt files fail."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            f.keys()
    except Exception as e:  # SafetensorError, OSError
        raise ModelLoadError(f"corrupt or truncated safetensors file {file}: {_first_line(e)}") from e


def check_model_dir(model_dir: Path, *, skip_weights: tuple[str, ...] = ()) -> None:
    """A diffusers FLUX pipeline directory with every component it lists, and readable weight files."""
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory not found: {model_dir}")
    index_file = model_dir / "model_index.json"
    if not index_file.is_file():
        raise ModelLoadError(f"{model_dir} is not a diffusers pipeline directory: model_index.json is missing")
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read {index_file}: {_first_line(e)}") from e
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        folder = model_dir / name
        if not folder.is_dir():
            raise ModelLoadError(f"{model_dir} lacks the {name}/ component that model_index.json lists")
        if name not in WEIGHT_COMPONENTS or name in skip_weights:
            continue
        weights = sorted(folder.glob("*.safetensors"))
        if not weights:
            pickled = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt*"))
            if pickled:
                raise ModelLoadError(f"{folder} holds only pickle checkpoints ({', '.join(pickled)}); fluxplan "
                                     "loads safetensors and GGUF only and never unpickles")
            raise ModelLoadError(f"{folder} holds no weight file (*.safetensors)")
        for file in weights:
            check_safetensors(file)


def normalized(candidate: Candidate) -> Candidate:
    """The candidate with its enum fields as enums (a plain dataclass does not coerce 'none' to Offload.NONE)."""
    return dataclasses.replace(
        candidate, offload=Offload(candidate.offload), compile=Compile(candidate.compile),
        text_encoder_placement=TextEncoderPlacement(candidate.text_encoder_placement))


def _resolve_dtype(device: str, dtype: "torch.dtype | None") -> "torch.dtype":
    import torch

    if dtype is not None:
        return dtype
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def _from_pretrained(model: str, local: bool, kwargs: dict[str, Any]):
    from diffusers import FluxPipeline

    if local:
        return FluxPipeline.from_pretrained(model, **kwargs)
    try:  # a hub id: use the local HF cache without touching the network when it is there
        return FluxPipeline.from_pretrained(model, local_files_only=True, **kwargs)
    except OSError:
        return FluxPipeline.from_pretrained(model, **kwargs)


@contextmanager
def _load_errors(what: str, candidate: Candidate):
    """Turn what diffusers / transformers / quantizers raise while loading into one-line FluxplanErrors."""
    try:
        yield
    except FluxplanError:
        raise
    except ImportError as e:
        raise MissingPackage(getattr(e, "name", None) or _first_line(e), f"loading {candidate.label()}") from e
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, AssertionError) as e:
        raise ModelLoadError(f"cannot load {what} as transformer {candidate.transformer} / T5 "
                             f"{candidate.text_encoder_2}: {_first_line(e)}") from e


def load(candidate: Candidate, model: str | Path, *, device: str, dtype: "torch.dtype",
         gguf_file: Path | None = None) -> tuple[Any, list[str]]:
    """FluxPipeline.from_pretrained with the candidate's weight formats applied (no placement yet)."""
    candidate = normalized(candidate)
    t_backend, t_variant = backends.resolve(candidate.transformer, TRANSFORMER)
    e_backend, e_variant = backends.resolve(candidate.text_encoder_2, TEXT_ENCODER_2)
    t_backend.check(candidate.transformer, TRANSFORMER, device)
    e_backend.check(candidate.text_encoder_2, TEXT_ENCODER_2, device)
    is_gguf = t_backend.family is BackendFamily.GGUF
    if gguf_file is not None and not is_gguf:
        raise BadInput(f"a GGUF file was given but the transformer format is {candidate.transformer!r}")

    local = is_local(model)
    model_dir = Path(model).expanduser() if local else None
    if model_dir is not None:
        check_model_dir(model_dir, skip_weights=("transformer",) if is_gguf else ())
    if is_gguf and gguf_file is None:
        if model_dir is None:
            raise BadInput(f"format {candidate.transformer} with a hub model needs a GGUF file (--gguf PATH)")
        gguf_file = t_backend.default_file(model_dir, t_variant)
    source = str(model_dir) if model_dir is not None else str(model)

    quant_mapping = {}
    t_config = t_backend.transformer_config(t_variant, dtype)
    e_config = e_backend.text_encoder_config(e_variant, dtype)
    if t_config is not None:
        quant_mapping[TRANSFORMER] = t_config
    if e_config is not None:
        quant_mapping[TEXT_ENCODER_2] = e_config
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quant_mapping:
        from diffusers.quantizers import PipelineQuantizationConfig

        kwargs["quantization_config"] = PipelineQuantizationConfig(quant_mapping=quant_mapping)
    with _load_errors(f"GGUF file {gguf_file}", candidate):
        transformer = t_backend.load_transformer(t_variant, source, dtype, gguf_file)
    if transformer is not None:
        kwargs[TRANSFORMER] = transformer
    with _load_errors(source, candidate):
        pipe = _from_pretrained(source, local, kwargs)
    notes = [t_backend.describe(TRANSFORMER, t_variant), e_backend.describe(TEXT_ENCODER_2, e_variant)]
    notes += t_backend.after_load(pipe, TRANSFORMER, t_variant, dtype)
    notes += e_backend.after_load(pipe, TEXT_ENCODER_2, e_variant, dtype)
    return pipe, notes


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def build(candidate: Candidate, model: Path | str, *, device: str = "cuda", dtype: "torch.dtype | None" = None,
          gguf_file: Path | None = None, t5_cpu_dtype: str = "bfloat16") -> Built:
    """Load `model` (a local pipeline directory or a hub id) in the candidate's formats and set it up on `device`.
    `t5_cpu_dtype`: what T5 runs in when placed on the CPU (the plan's Host.cpu_dtype)."""
    import torch

    candidate = normalized(candidate)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NoGPU(f"device {device!r} asked for, but torch sees no CUDA GPU here (torch {torch.__version__})")
    dtype = _resolve_dtype(device, dtype)
    placement.check(candidate, device)
    t0 = time.perf_counter()
    pipe, notes = load(candidate, model, device=device, dtype=dtype,
                       gguf_file=Path(gguf_file) if gguf_file is not None else None)
    _sync(device)
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()  # blocks freed while quantizing would otherwise stay reserved
    t1 = time.perf_counter()
    try:
        notes += placement.setup(pipe, candidate, device, t5_cpu_dtype=t5_cpu_dtype)
    except (ValueError, RuntimeError, TypeError, NotImplementedError, AttributeError) as e:
        raise FluxplanError(f"cannot set up {candidate.label()} on {device}: {_first_line(e)}") from e
    _sync(device)
    return Built(pipe=pipe, load_s=t1 - t0, setup_s=time.perf_counter() - t1, notes=notes)
