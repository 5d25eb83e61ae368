"""NVML (bench telemetry.csv) vs nvidia-smi (-lms 500) over each variant's replay window: python nvml_vs_nvidia_smi.py RESULTS_ROOT."""
import glob, json, sys
import pandas as pd
root = sys.argv[1]
smi = pd.concat([pd.read_csv(f, skipinitialspace=True) for f in sorted(glob.glob(f'{root}/nvidia_smi*.csv'))])
smi.columns = ['ts', 'util', 'memutil', 'mem', 'memtot', 'power', 'sm']
smi['t'] = (pd.to_datetime(smi['ts'], format='%Y/%m/%d %H:%M:%S.%f') - pd.Timestamp('1970-01-01')).dt.total_seconds()  # device clock is UTC
rows = []
for run in sorted(glob.glob(f'{root}/*/*/telemetry.csv')):
    name = '/'.join(run.split('/')[-3:-1])
    tel = pd.read_csv(run)
    t0, t1 = tel.time.min(), tel.time.max()
    s = smi[(smi.t >= t0) & (smi.t <= t1)]
    rows.append({'run': name, 'window_s': round(t1 - t0, 1),
        'nvml_n': len(tel), 'nvml_util_mean': tel.util_pct.mean(), 'nvml_util_p50': tel.util_pct.median(), 'nvml_util_max': tel.util_pct.max(),
        'nvml_mem_mib': tel.mem_used_mib.max(), 'nvml_power_w': tel.power_w.mean(),
        'smi_n': len(s), 'smi_util_mean': s.util.mean(), 'smi_util_p50': s.util.median(), 'smi_util_max': s.util.max(),
        'smi_mem_mib': s['mem'].max(), 'smi_power_w': s.power.mean()})
out = pd.DataFrame(rows).round(1)
print(out.to_string(index=False))
