"""kairos.eventloop: uvloop where installed, the standard loop otherwise."""

from __future__ import annotations

import asyncio
import sys

import pytest

from kairos import eventloop


async def _loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_runs_on_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert eventloop.run(_loop_type()).startswith("uvloop")


def test_falls_back_to_the_standard_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import fails as if not installed
    assert eventloop.loop_factory() is None
    assert eventloop.run(_loop_type()).startswith("asyncio")
