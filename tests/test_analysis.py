"""Pure analysis functions on hand-made tables."""

from __future__ import annotations

import pandas as pd

from bench.analysis import time_split


def test_time_split_says_how_much_of_a_sweep_went_to_starting_and_stopping_servers() -> None:
    table = pd.DataFrame(
        {"startup_s": [50.0, 110.0, None], "shutdown_s": [5.0, 5.0, None], "replay_s": [20.0, 10.0, None]}
    )  # the third variant failed before its server started
    assert time_split(table) == "server time: start-up 160 s, replay 30 s, shutdown 10 s (85% starting and stopping)"


def test_time_split_of_runs_that_never_started_a_server_is_empty() -> None:
    assert time_split(pd.DataFrame({"startup_s": [None], "replay_s": [None]})) == ""
