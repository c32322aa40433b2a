"""Pictures of gpucal's JSON output (run through scripts/plot).

  scripts/plot FILE.json [-o OUT.png]

The kind of picture follows the file's "schema":
  gpucal.estimate/1     memory breakdown of one GPU (gpucal estimate --json)
  gpucal.calibration/1  GEMM throughput and fitted efficiency against M per
                        dtype, and copy bandwidth against size (results/<sku>/*.json)
  gpucal.simulate/1     TTFT, TPOT, ITL and E2E distributions, and the run's
                        batch and KV occupancy over time (gpucal simulate --json)
  gpucal.plan/1         each plan's cost per hour (GPUs when unpriced) against
                        its TPOT p99, with the cheapest-for-latency front
                        (gpucal plan --json)
Bad input: one line on stderr naming the file, exit 2, no output file.
"""

import json
import math
import os
import re
import statistics
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GIB = 2.0**30


class BadInput(Exception):
    pass


def need(obj, key, where):
    if not isinstance(obj, dict) or key not in obj:
        raise BadInput(f"{where}: field '{key}' is missing")
    return obj[key]


def number(obj, key, where):
    v = need(obj, key, where)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise BadInput(f"{where}: field '{key}' is not a finite number")
    return float(v)


def plot_estimate(d, path):
    where = path
    total = number(d, "gpu_total_bytes", where)
    parts = [
        ("weights", number(d, "weights_bytes", where)),
        ("activation peak", number(d, "activation_peak_bytes", where)),
        ("KV cache pool", number(d, "kv_pool_bytes", where)),
        ("CUDA context", number(d, "cuda_context_bytes", where)),
        ("non-torch", number(d, "non_torch_bytes", where)),
        ("NCCL", number(d, "nccl_bytes", where)),
        ("CUDA graphs", number(d, "cuda_graph_bytes", where)),
    ]
    used = sum(b for _, b in parts)
    parts.append(("left unused", max(total - used, 0.0)))
    fig, ax = plt.subplots(figsize=(10, 3.6))
    left = 0.0
    colors = plt.cm.tab10.colors
    for i, (name, b) in enumerate(parts):
        if b <= 0:
            continue
        ax.barh([0], [b / GIB], left=[left / GIB], color=colors[i % 10], edgecolor="white",
                label=f"{name}: {b / GIB:.2f} GiB ({100 * b / total:.1f}%)")
        left += b
    budget = number(d, "budget_bytes", where)
    ax.axvline(budget / GIB, color="black", linestyle="--", linewidth=1)
    ax.text(budget / GIB, 0.45, f" budget {budget / GIB:.1f} GiB (x{number(d, 'memory_fraction', where):g})",
            va="bottom", fontsize=8)
    ax.set_xlim(0, total / GIB)
    ax.set_yticks([])
    ax.set_xlabel("GiB per GPU")
    ax.set_title(f"{d.get('model', '?')} on {d.get('gpu', '?')} (tp={d.get('tp', 1)}), "
                 f"{d.get('engine', '?')} {d.get('engine_version', '')}: memory of one GPU ({total / GIB:.1f} GiB)",
                 fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_calibration(d, path):
    where = path
    ms = need(d, "measurements", where)
    fits = {f.get("name"): f for f in need(d, "fits", where) if isinstance(f, dict)}
    gemm = {}
    bandwidth = {}
    for i, m in enumerate(ms):
        w = f"{where}: measurements[{i}]"
        labels = need(m, "labels", w)
        samples = need(m, "samples", w)
        if not isinstance(samples, list) or not samples:
            raise BadInput(f"{w}: samples is not a non-empty list")
        t_us = statistics.median(float(x) for x in samples)
        if t_us <= 0:
            raise BadInput(f"{w}: a median time of {t_us} us")
        p = need(m, "params", w)
        kind = labels.get("kind")
        if kind == "gemm":
            flops = 2 * number(p, "m", w) * number(p, "n", w) * number(p, "k", w)
            key = (labels.get("dtype", "?"), labels.get("shape", "?"))
            gemm.setdefault(key, []).append((number(p, "m", w), flops / (t_us * 1e-6) / 1e12))
        elif kind == "bandwidth":
            moved = number(p, "bytes_moved", w) if "bytes_moved" in p else number(p, "bytes", w)
            bandwidth.setdefault(labels.get("op", "?"), []).append((number(p, "bytes", w), moved / (t_us * 1e-6) / 1e9))
    if not gemm and not bandwidth:
        raise BadInput(f"{where}: no gemm or bandwidth measurements to plot")
    def curves(ax, series, title, xlabel, ylabel, fontsize, logy=False, **style):
        """One line per named series of (x, y) points, on a log2 x axis."""
        for name, pts in series:
            pts = sorted(pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name, **style)
        ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if series:
            ax.legend(fontsize=fontsize)

    efficiency = []
    for name, f in sorted(fits.items()):
        if name and name.startswith("gemm/"):
            pts = [(int(k[len("compute_efficiency_m"):]), 100 * float(v)) for k, v in f.get("params", {}).items()
                   if re.fullmatch(r"compute_efficiency_m\d+", k)]
            if pts:
                efficiency.append((name[len("gemm/"):], pts))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    curves(axes[0], [(f"{dtype} {shape}", pts) for (dtype, shape), pts in sorted(gemm.items())], "GEMM throughput measured",
           "M (tokens)", "TFLOP/s (median)", 6, logy=True, markersize=3)
    curves(axes[1], efficiency, "GEMM efficiency fitted per M", "M (tokens)", "compute efficiency (% of the datasheet peak)", 7)
    curves(axes[2], sorted(bandwidth.items()), "HBM bandwidth", "buffer size (bytes)", "GB/s (bytes moved / median time)", 7)
    dev = d.get("device", {})
    fig.suptitle(f"calibration of {dev.get('sku', '?')} ({dev.get('name', '')}, driver {dev.get('driver_version', '?')})",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_simulate(d, path):
    where = path
    fig, axes = plt.subplots(1, 5, figsize=(20, 4))
    for ax, key, title in zip(axes, ["ttft_s", "tpot_s", "itl_s", "e2e_s"],
                              ["TTFT (arrival to first token)", "TPOT per request", "ITL between tokens",
                               "E2E (arrival to last token)"]):
        l = need(d, key, where)
        cdf = need(l, "cdf_percent_0_to_100", f"{where}: {key}")
        if not isinstance(cdf, list) or len(cdf) != 101:
            raise BadInput(f"{where}: {key}.cdf_percent_0_to_100 is not 101 quantiles")
        ax.plot([1e3 * float(x) for x in cdf], list(range(101)), color="tab:blue")
        for q, style in (("p50", ":"), ("p90", "--"), ("p99", "-")):
            v = number(l, q, f"{where}: {key}")
            ax.axvline(1e3 * v, color="tab:red", linestyle=style, linewidth=1, label=f"{q} {1e3 * v:.1f} ms")
        ax.set_xlabel("ms")
        ax.set_ylabel("% of samples at or below")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    ax = axes[4]
    tl = need(d, "timeline", where)
    if tl:
        t = [number(p, "time_s", where) for p in tl]
        ax.plot(t, [number(p, "running", where) for p in tl], label="running requests", color="tab:green")
        ax.plot(t, [number(p, "waiting", where) for p in tl], label="waiting requests", color="tab:orange")
        ax.set_xlabel("s")
        ax.set_ylabel("requests")
        ax2 = ax.twinx()
        ax2.plot(t, [100 * number(p, "kv_used_fraction", where) for p in tl], label="KV pool used", color="tab:purple",
                 linewidth=0.8)
        ax2.set_ylabel("KV pool used (%)")
        ax2.set_ylim(0, 105)
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left")
    ax.set_title("over time", fontsize=9)
    w = d.get("workload", {})
    fig.suptitle(f"gpucal simulate: {d.get('model', '?')} on {d.get('gpu', '?')} (tp={d.get('tp', 1)}), "
                 f"{w.get('requests', '?')} requests at {w.get('qps', '?')} req/s; {number(d, 'output_tokens_per_s', where):.0f} "
                 f"output tokens/s, {int(number(d, 'preemptions', where))} preemptions", fontsize=10)
    fig.tight_layout()
    return fig


def plot_plan(d, path):
    where = path
    plans = need(d, "plans", where)
    if not plans:
        raise BadInput(f"{where}: no plans to plot")
    by_cost = all(p.get("cost_per_hour") is not None for p in plans)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    gpus = sorted({p.get("gpu", "?") for p in plans})
    colors = {g: plt.cm.tab10.colors[i % 10] for i, g in enumerate(gpus)}
    pts = []
    for i, p in enumerate(plans):
        w = f"{where}: plans[{i}]"
        y = number(p, "cost_per_hour", w) if by_cost else number(p, "total_gpus", w)
        x = 1e3 * number(p, "tpot_p99_s", w)
        pts.append((x, y))
        ax.scatter([x], [y], color=colors[p.get("gpu", "?")], marker="s" if p.get("mode") == "disagg" else "o", s=30)
        ax.annotate(f"{i + 1}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    # The front: no other plan is both cheaper and faster.
    front = sorted(pts)
    best, line = math.inf, []
    for x, y in front:
        if y < best:
            line.append((x, y))
            best = y
    ax.step([p[0] for p in line], [p[1] for p in line], where="post", color="gray", linestyle="--", linewidth=1,
            label="front: cheapest for its TPOT p99")
    for g in gpus:
        ax.scatter([], [], color=colors[g], label=g)
    if any(p.get("mode") == "disagg" for p in plans):
        ax.scatter([], [], color="gray", marker="s", label="disaggregated")
    target = number(need(d, "workload", where), "tpot_p99_s", where)
    ax.axvline(1e3 * target, color="tab:red", linewidth=1, label=f"TPOT p99 target {1e3 * target:g} ms")
    ax.set_xlabel("TPOT p99 per request (ms)")
    ax.set_ylabel("$ per hour" if by_cost else "GPUs")
    w = d["workload"]
    ax.set_title(f"gpucal plan: {d.get('model', '?')} at {w.get('qps'):g} req/s, {w.get('prompt_len'):g} + {w.get('output_len'):g} tokens "
                 f"({len(plans)} plans shown)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


KINDS = {
    "gpucal.estimate/1": plot_estimate,
    "gpucal.calibration/1": plot_calibration,
    "gpucal.simulate/1": plot_simulate,
    "gpucal.plan/1": plot_plan,
}


def main(argv):
    args = list(argv)
    out = None
    if "-o" in args:
        i = args.index("-o")
        if i + 1 >= len(args):
            raise BadInput("-o: the output path is missing")
        out = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1 or args[0].startswith("-"):
        raise BadInput("usage: scripts/plot FILE.json [-o OUT.png]")
    path = args[0]
    if not out:
        out = os.path.splitext(path)[0] + ".png"
    if not out.endswith(".png"):
        raise BadInput(f"-o: '{out}' does not end in .png")
    try:
        with open(path, "rb") as f:
            text = f.read((64 << 20) + 1)
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e.strerror})")
    if len(text) > 64 << 20:
        raise BadInput(f"{path}: larger than 64 MiB")
    try:
        d = json.loads(text)
    except (ValueError, RecursionError):
        raise BadInput(f"{path}: not JSON")
    schema = d.get("schema") if isinstance(d, dict) else None
    if schema not in KINDS:
        raise BadInput(f"{path}: schema {schema!r} is not one scripts/plot draws (allowed: {', '.join(KINDS)})")
    fig = KINDS[schema](d, path)
    # Atomically: a temporary file beside the output, renamed over it.
    folder = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=".plot-", suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(out)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except BadInput as e:
        print(f"scripts/plot: error: {e}", file=sys.stderr)
        sys.exit(2)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        print(f"scripts/plot: error: {sys.argv[1] if len(sys.argv) > 1 else '?'}: unexpected content ({type(e).__name__})",
              file=sys.stderr)
        sys.exit(2)
