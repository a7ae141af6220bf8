"""fluxplan: run FLUX text-to-image models at the best quality a GPU can hold.

    import fluxplan
    p = fluxplan.plan("4090", resolution="1024x1024")   # no GPU or torch needed
    print(p.explain())
    result = fluxplan.generate("a red fox", model="synthetic:tiny", steps=2)   # needs the [run] extra

The planning API imports no torch; `load` and `generate` import the run layer when called.
"""

__all__ = ["plan", "load", "generate", "Plan", "Candidate", "FluxplanError"]
__version__ = "0.1.0"

# Names resolve on first use, so that `import fluxplan.cli.main` (the console script) imports nothing heavy
# before it has set up its process.
_WHERE = {"plan": "fluxplan.planner", "Plan": "fluxplan.models", "Candidate": "fluxplan.models",
          "FluxplanError": "fluxplan.errors", "load": "fluxplan.api", "generate": "fluxplan.api"}


def __getattr__(name):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fluxplan' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_WHERE))
