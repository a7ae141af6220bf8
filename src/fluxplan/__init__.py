"""fluxplan: run FLUX text-to-image models at the best quality a GPU can hold.

    import fluxplan
    p = fluxplan.plan("4090", resolution="1024x1024")   # no GPU or torch needed
    print(p.explain())
    result = fluxplan.generate("a red fox", model="synthetic:tiny", steps=2)   # needs the [run] extra

The planning API imports no torch; `load` and `generate` import the run layer when called.
"""

from fluxplan.errors import FluxplanError
from fluxplan.models import Candidate, Plan
from fluxplan.planner import plan

__all__ = ["plan", "load", "generate", "Plan", "Candidate", "FluxplanError"]
__version__ = "0.1.0"


def __getattr__(name):
    if name in ("load", "generate"):
        from fluxplan import api

        return getattr(api, name)
    raise AttributeError(f"module 'fluxplan' has no attribute {name!r}")
