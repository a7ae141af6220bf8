"""The catalog's data files (JSON), shipped inside the package."""

from pathlib import Path

DATA = Path(__file__).resolve().parent


def read(name: str) -> str:
    return (DATA / name).read_text()
