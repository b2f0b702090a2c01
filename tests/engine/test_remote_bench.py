"""`hearth bench affinity`'s plumbing, on fake servers (the real figures need two vLLM servers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.affinity import AffinityPlan, run_affinity
from tests.conftest import make_settings
from tests.engine.fake_openai import FakeOpenAI


@pytest.fixture
async def fakes() -> AsyncIterator[list[FakeOpenAI]]:
    servers = [await FakeOpenAI().start(), await FakeOpenAI().start()]
    yield servers
    for server in servers:
        await server.stop()
    assert [s.unexpected for s in servers] == [[], []]


async def test_each_run_reports_every_replicas_cache(tmp_path: Path, fakes: list[FakeOpenAI]) -> None:
    plan = AffinityPlan(channels=6, turns=3, reply_tokens=4, urls=tuple(f.url for f in fakes))
    figures = (await run_affinity(make_settings(tmp_path), plan)).to_json()

    modes = figures["modes"]
    assert isinstance(modes, dict) and list(modes) == ["single", "affinity", "round-robin"]
    assert [len(m["replicas"]) for m in modes.values()] == [1, 2, 2]
    assert all(m["cache_reset"] for m in modes.values()) and [f.resets for f in fakes] == [3, 2]
    # turns 2..3 of 6 channels: 12 replies counted per run, spread over the replicas used
    assert [sum(r["replies"] for r in m["replicas"]) for m in modes.values()] == [12, 12, 12]
    assert [r["replies"] for r in modes["round-robin"]["replicas"]] == [6, 6]
    assert figures["single_hit_rate"] == 0.75 and figures["affinity_vs_single"] == 1.0
