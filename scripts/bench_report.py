"""Summarise bench/results.jsonl: medians with min-max per workload and server,
the redlockd/redis ratio, a markdown table, a JSON summary and an SVG chart."""

import json
import statistics
import sys
from collections import defaultdict

results_path, out_dir, redis_label, machine = sys.argv[1:5]
rows = [json.loads(line) for line in open(results_path) if line.strip()]

# (workload, metric) -> whether higher is better
METRICS = {
    "rps": True,
    "cpu_us_per_req": False,
    "cycles_per_sec": True,
    "cpu_us_per_cycle": False,
    "p99_us": False,
    "rss_per_key": False,
    "used_memory_per_key": False,
    "reclaimed_ms_after_last_deadline": False,
    "rss_back_ms_after_last_deadline": False,
    "rss_per_conn": False,
    "ping_p99_us": False,
    "ns_per_arg": False,
}

series = defaultdict(list)
order = []
for r in rows:
    for metric in METRICS:
        if metric in r:
            key = (r["workload"], metric)
            if key not in order:
                order.append(key)
            series[(r["workload"], metric, r["server"])].append(float(r[metric]))

# redlockd's native release (DELEX IFEQ) has no Redis 7 equivalent: the
# issue's target compares it with Redis releasing through its Lua script.
def redis_baseline(workload):
    return workload.replace("(DELEX)", "(EVALSHA)")


summary = []
for workload, metric in order:
    entry = {"workload": workload, "metric": metric, "higher_is_better": METRICS[metric]}
    for server in ("redis", "redlockd"):
        values = series.get((workload, metric, server))
        if values is None and server == "redis" and redis_baseline(workload) != workload:
            values = series.get((redis_baseline(workload), metric, server))
            entry["redis_baseline"] = redis_baseline(workload)
        if values:
            entry[server] = {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
    if "redis" in entry and "redlockd" in entry and entry["redis"]["median"]:
        entry["ratio"] = entry["redlockd"]["median"] / entry["redis"]["median"]
    summary.append(entry)

json.dump({"redis": redis_label, "machine": machine, "results": summary}, open(f"{out_dir}/results.json", "w"), indent=1)


def fmt(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


lines = [
    f"Benchmark: redlockd vs {redis_label}; {machine}; medians of {max(e.get('redis', e.get('redlockd'))['n'] for e in summary)} runs (min–max).",
    "",
    "| workload | metric | redis | redlockd | redlockd / redis |",
    "|---|---|---|---|---|",
]
for e in summary:
    cells = []
    for server in ("redis", "redlockd"):
        s = e.get(server)
        cells.append(f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})" if s else "—")
    if "redis_baseline" in e:
        cells[0] += " (Lua release)"
    ratio = f"{e['ratio']:.2f}×" if "ratio" in e else "—"
    better = "higher is better" if e["higher_is_better"] else "lower is better"
    lines.append(f"| {e['workload']} | {e['metric']} ({better}) | {cells[0]} | {cells[1]} | {ratio} |")
open(f"{out_dir}/results.md", "w").write("\n".join(lines) + "\n")

# Chart: throughput ratios (redlockd / redis) for the throughput workloads.
bars = [(e["workload"], e["ratio"]) for e in summary if "ratio" in e and e["metric"] in ("rps", "cycles_per_sec")]
width, bar_h, left = 760, 24, 260
height = 60 + bar_h * len(bars)
scale = (width - left - 60) / max([2.0] + [r for _, r in bars])
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       f'<text x="10" y="20" font-size="14">Throughput, redlockd / {redis_label} (median; 1.0 = equal)</text>',
       f'<text x="10" y="38" fill="#555">{machine}</text>']
for i, (name, ratio) in enumerate(bars):
    y = 50 + i * bar_h
    color = "#2a7" if ratio >= 1 else "#c44"
    svg.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{name}</text>')
    svg.append(f'<rect x="{left}" y="{y + 4}" width="{ratio * scale:.1f}" height="{bar_h - 8}" fill="{color}"/>')
    svg.append(f'<text x="{left + ratio * scale + 6:.1f}" y="{y + 16}">{ratio:.2f}×</text>')
x1 = left + scale
svg.append(f'<line x1="{x1:.1f}" y1="46" x2="{x1:.1f}" y2="{height - 6}" stroke="#333" stroke-dasharray="4 3"/>')
svg.append("</svg>")
open(f"{out_dir}/chart.svg", "w").write("\n".join(svg) + "\n")
