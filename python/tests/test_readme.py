"""The README's prefix-reuse example runs as written against a real daemon."""
from __future__ import annotations

import re

import numpy as np

from conftest import REPO


def readme_example() -> str:
    text = (REPO / "python" / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    return next(b for b in blocks if "class PrefixCache" in b)


def test_prefix_cache_example(daemon, monkeypatch):
    monkeypatch.setenv("KVT_SOCKET", daemon.socket)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((64, 2, 2, 16, 2, 8)).astype(np.float16)  # the engine's blocks
    cache = scope["PrefixCache"](pool, model_id="readme", max_blocks_per_request=8)

    prompt = rng.integers(0, 32000, 16 * 5 + 3, dtype=np.uint32)
    assert cache.load(prompt, [0, 1, 2, 3, 4, 5]) == 0          # cold
    cache.save(prompt, [0, 1, 2, 3, 4, 5])
    expected = pool[[0, 1, 2, 3, 4]].copy()

    follow_up = np.concatenate([prompt, rng.integers(0, 32000, 40, dtype=np.uint32)])
    table = [10, 11, 12, 13, 14, 15, 16, 17]
    assert cache.load(follow_up, table) == 80                    # five blocks reused
    assert pool[table[:5]].tobytes() == expected.tobytes()
    cache.client.close()
