"""Where the shared calibration data came from (repository, commit, licence), per data folder.

Copied from each folder's PROVENANCE.md so that every shipped profile names its sources.
"""

from __future__ import annotations

from collections.abc import Iterable

UPSTREAM: dict[str, dict[str, str]] = {
    "aiconfigurator": {
        "repo": "github.com/ai-dynamo/aiconfigurator (PyPI aiconfigurator-core "
        "0.12.0, wheel sha256 aadc4aad0a00bf8a61c477c62bef43de479849c3aa0b1c30"
        "78068e08309eccc4)",
        "licence": "Apache-2.0",
    },
    "blis": {
        "repo": "github.com/inference-sim/inference-sim@f90a1e3a6787da17c2cd463dab6fb2660b1b1760",
        "licence": "Apache-2.0",
    },
    "llm_d_inference_sim": {
        "repo": "github.com/llm-d/llm-d-inference-sim@eec055a39e6bbc1adbcb54f88f24f36b7f94e781",
        "licence": "Apache-2.0",
    },
    "llmservingsim": {
        "repo": "github.com/casys-kaist/LLMServingSim@5daddb21a545658d5150b535712d0494584b5278",
        "licence": "MIT",
    },
    "splitwise_sim": {
        "repo": "github.com/Mutinifni/splitwise-sim@8f99e7dc9b407f4ce2488d03dd44c0b8b946dab0",
        "licence": "MIT",
    },
    "vidur": {
        "repo": "github.com/microsoft/vidur@7d47513363ec447a741ac5e47241580b47724fbf",
        "licence": "MIT",
    },
    "distserve": {
        "repo": "github.com/LLMServe/DistServe@82831f1604cc6b10bebd360f6c437a07790dde9f",
        "licence": "Apache-2.0",
    },
}


def upstream_for(files: Iterable[str]) -> dict[str, dict[str, str]]:
    """Provenance of the data folders that ``files`` (paths relative to shared/profiles) use."""
    return {folder: UPSTREAM[folder] for folder in sorted({f.split("/")[0] for f in files})}
