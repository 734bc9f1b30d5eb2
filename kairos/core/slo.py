"""Per-request latency objectives and named SLO classes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SLO:
    """Time-to-first-token and time-per-output-token targets, in seconds."""

    ttft: float
    tpot: float

    def __post_init__(self) -> None:
        for name, value in (("ttft", self.ttft), ("tpot", self.tpot)):
            if not value > 0 or value == float("inf"):
                raise ValueError(
                    f"SLO {name} must be a positive finite number of seconds, got {value!r}"
                )

    def scaled(self, factor: float) -> SLO:
        """The same SLO made looser (factor > 1) or tighter (factor < 1)."""
        if not factor > 0:
            raise ValueError(f"SLO scale must be positive, got {factor!r}")
        return SLO(self.ttft * factor, self.tpot * factor)


@dataclass(frozen=True, slots=True)
class SLOClass:
    """A named SLO, e.g. ``interactive`` or ``batch``; requests may pick one by name."""

    name: str
    slo: SLO


# Defaults follow DistServe's chat setting for an 8B-class model on one GPU.
DEFAULT_SLO = SLO(ttft=1.0, tpot=0.05)

SLO_CLASSES: dict[str, SLOClass] = {
    "interactive": SLOClass("interactive", SLO(ttft=0.5, tpot=0.04)),
    "standard": SLOClass("standard", DEFAULT_SLO),
    "relaxed": SLOClass("relaxed", SLO(ttft=5.0, tpot=0.1)),
}


def slo_class(name: str) -> SLOClass:
    try:
        return SLO_CLASSES[name]
    except KeyError:
        known = ", ".join(sorted(SLO_CLASSES))
        raise ValueError(f"unknown SLO class {name!r}; known classes: {known}") from None
