"""bench: which vLLM server configuration is fastest for my workload, and did it get worse?"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["History", "Results", "compare", "history", "load"]


def __getattr__(name: str) -> Any:
    # The results API (bench/api.py) loads on first use: `python -m bench` and `import bench` stay light.
    if name in __all__:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
