"""Shipped hardware profiles (fitted latency models) and how to load them.

The JSON files in ``data/`` are built by ``python -m kairos.profiles.fit`` from measured kernel
tables (see docs/profiles.md); loading them needs nothing beyond the standard library and the
core latency models.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from kairos.core.latency.profile import Profile

DEFAULT_PROFILE = "llama3-8b-h100"

__all__ = ["DEFAULT_PROFILE", "available_profiles", "load_profile"]


def _data() -> Traversable:
    return resources.files(__name__).joinpath("data")


def available_profiles() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(
        p.name.removesuffix(".json") for p in _data().iterdir() if p.name.endswith(".json")
    )


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (``llama3-8b-h100``) or any profile JSON file by path."""
    shipped = _data().joinpath(f"{name_or_path}.json")
    if shipped.is_file():
        return Profile.from_dict(json.loads(shipped.read_text(encoding="utf-8")))
    path = Path(name_or_path)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise ValueError(f"profile file {name_or_path!r} does not exist")
        return Profile.from_dict(json.loads(path.read_text(encoding="utf-8")))
    raise ValueError(
        f"unknown profile {name_or_path!r}; available: {', '.join(available_profiles())}"
    )
