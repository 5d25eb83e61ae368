"""bench's NVML sampler (telemetry.csv) vs nvidia-smi -lms 500, per GPU, over each variant's replay window.

usage: python nvml_vs_nvidia_smi.py RESULTS_ROOT   (RESULTS_ROOT holds nvidia_smi*.csv and parallel/<variant>/)
"""

import glob
import sys

import pandas as pd

root = sys.argv[1]
smi = pd.concat([pd.read_csv(f, skipinitialspace=True) for f in sorted(glob.glob(f"{root}/nvidia_smi*.csv"))])
smi.columns = ["ts", "index", "util", "mem", "power", "sm"]
# The device's clock is UTC, like the epoch seconds of telemetry.csv.
smi["t"] = (pd.to_datetime(smi["ts"], format="%Y/%m/%d %H:%M:%S.%f") - pd.Timestamp("1970-01-01")).dt.total_seconds()
rows = []
for run in sorted(glob.glob(f"{root}/*/*/telemetry.csv")):
    name = "/".join(run.split("/")[-3:-1])
    tel = pd.read_csv(run)
    t0, t1 = tel.time.min(), tel.time.max()
    for gpu in sorted(tel.device.unique()):
        n = tel[tel.device == gpu]
        s = smi[(smi.t >= t0) & (smi.t <= t1) & (smi["index"] == int(gpu.removeprefix("gpu")))]
        rows.append({
            "run": name, "gpu": gpu, "window_s": t1 - t0,
            "nvml_n": len(n), "nvml_util_mean": n.util_pct.mean(), "smi_n": len(s), "smi_util_mean": s.util.mean(),
            "nvml_mem_peak_mib": n.mem_used_mib.max(), "smi_mem_peak_mib": s["mem"].max(),
            "nvml_power_w": n.power_w.mean(), "smi_power_w": s.power.mean(),
            "nvml_sm_mhz": n.sm_clock_mhz.mean(), "smi_sm_mhz": s.sm.mean(),
        })  # fmt: skip
print(pd.DataFrame(rows).round(1).to_string(index=False))
