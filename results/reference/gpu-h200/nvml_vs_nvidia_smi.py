"""NVML (bench's telemetry.csv) against nvidia-smi (-lms 500) at the same moments: each NVML sample paired with
the nearest nvidia-smi sample within 0.25 s (a run of several server starts has gaps between its replays).
    python nvml_vs_nvidia_smi.py RESULTS_ROOT"""
import glob
import sys

import pandas as pd

root = sys.argv[1]
smi = pd.concat([pd.read_csv(f, skipinitialspace=True) for f in sorted(glob.glob(f"{root}/nvidia_smi*.csv"))])
smi.columns = ["ts", "util", "memutil", "mem", "memtot", "power", "sm"]
smi["t"] = (pd.to_datetime(smi["ts"], format="%Y/%m/%d %H:%M:%S.%f") - pd.Timestamp("1970-01-01")).dt.total_seconds()
smi = smi.sort_values("t")
rows = []
for run in sorted(glob.glob(f"{root}/*/*/telemetry.csv")):
    tel = pd.read_csv(run).sort_values("time")
    m = pd.merge_asof(tel, smi, left_on="time", right_on="t", direction="nearest", tolerance=0.25).dropna(subset=["t"])
    rows.append({"run": "/".join(run.split("/")[-3:-1]), "pairs": len(m),
                 "util_nvml": m.util_pct.mean(), "util_smi": m.util.mean(),
                 "util_abs_diff_mean": (m.util_pct - m.util).abs().mean(),
                 "mem_nvml_mib": m.mem_used_mib.max(), "mem_smi_mib": m["mem"].max(),
                 "power_nvml_w": m.power_w.mean(), "power_smi_w": m.power.mean()})
print(pd.DataFrame(rows).round(1).to_string(index=False))
