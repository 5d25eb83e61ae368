"""How often the history's change-point rule cries wolf, and how often it finds a real step.

    .venv/bin/python benchmarks/history_detection.py [--trials 1000] [--seed 0]

Series of n nightly figures with independent normal noise (sigma 1): the share of series with no step
where `bench.regress.history.change_indices` still reports one (false changes per series), and the share of
series with one step of 2, 3 or 5 sigma half-way where it reports exactly that night and nothing else.
Real nights are not this tidy (drift, a loaded machine); the real history is in results/reference/history/.
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.regress.history import change_indices


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    steps = (2.0, 3.0, 5.0)
    print(f"{'nights':>6} {'false changes':>14} " + " ".join(f"{f'found {s:g} sigma':>14}" for s in steps))
    for n in (7, 8, 10, 14, 20, 30):
        false = np.mean([bool(change_indices(rng.normal(size=n))) for _ in range(a.trials)])
        half = n // 2
        found = [
            np.mean([change_indices(np.r_[rng.normal(size=half), s + rng.normal(size=n - half)]) == [half]
                     for _ in range(a.trials)])
            for s in steps
        ]  # fmt: skip
        print(f"{n:>6} {false:>14.1%} " + " ".join(f"{f:>14.1%}" for f in found))


if __name__ == "__main__":
    main()
