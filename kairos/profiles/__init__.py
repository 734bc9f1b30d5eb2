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
from typing import Any

from kairos.core.latency.profile import Profile

DEFAULT_PROFILE = "llama3-8b-h100"

__all__ = ["DEFAULT_PROFILE", "available_profiles", "load_profile", "profile_json"]


def _data() -> Traversable:
    return resources.files(__name__).joinpath("data")


def available_profiles() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(
        p.name.removesuffix(".json") for p in _data().iterdir() if p.name.endswith(".json")
    )


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (``llama3-8b-h100``) or any profile JSON file by path."""
    return Profile.from_dict(profile_json(name_or_path))


def profile_json(name_or_path: str) -> dict[str, Any]:
    """The JSON document of a shipped profile (by name) or a profile file (by path)."""
    shipped = _data().joinpath(f"{name_or_path}.json")
    if shipped.is_file():
        doc = json.loads(shipped.read_text(encoding="utf-8"))
    else:
        path = Path(name_or_path)
        if not (path.suffix == ".json" or path.is_file()):
            raise ValueError(
                f"unknown profile {name_or_path!r}; available: {', '.join(available_profiles())}"
            )
        if not path.is_file():
            raise ValueError(f"profile file {name_or_path!r} does not exist")
        doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"profile {name_or_path!r} is not a JSON object")
    return doc
