"""Where bench's own files are: its configs and built-in data ship inside the package, never beside a checkout."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CONF_DIR = PACKAGE_DIR / "conf"  # the config groups; Hydra reads them as pkg://bench.conf
CONF_SEARCH_PATH = "pkg://bench.conf"


def packaged(path: str) -> Path:
    """A relative path the user gave, tried from the working directory, then inside the package
    (`data/qa.json` is the built-in set wherever bench is installed)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return PACKAGE_DIR / p
