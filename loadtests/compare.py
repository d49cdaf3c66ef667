#!/usr/bin/env python3
"""The side-by-side table and plot: huizhen against Janus, from one `loadtests/bench.sh` run.

    python3 loadtests/compare.py RESULTS_DIR [TITLE]

Pairs every `janus-NAME.json` in RESULTS_DIR with huizhen's `NAME.json` from the same run and
writes RESULTS_DIR/side-by-side.md (a Markdown table, ratios ours / Janus) and, for each knee
search both servers ran, a plot of throughput and latency percentiles against load with both
servers' curves: side-by-side.png for the consult knee, side-by-side-training.png for the
training knee. Plots need matplotlib (loadtests/plotting.py).

Throughput is what the generator's subscribers received (stamped media packets per second of
the measured window), and per core it is that divided by the server process's CPU time over the
window (from /proc for both servers), so the two servers are counted by the same code.
"""
import json
import pathlib
import sys

from plotting import pyplot


def load(path: pathlib.Path):
    return json.loads(path.read_text())


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}×" if theirs else "—"


def n(v: float) -> str:
    """Thousands with a thin space, as docs/BENCHMARKS.md writes them."""
    return f"{v:,.0f}".replace(",", " ")


def mib(v: float) -> str:
    return f"{v / 1048576:.1f}"


def per_core(r) -> float:
    return r["server"]["received_per_process_cpu_second"]


def window(r) -> str:
    """Loss and p99 of the measured window alone (runs before 2026-12-01d lack them)."""
    if "window_latency_ms" not in r:
        return "–"
    return f"{r['window_loss_ratio'] * 100:.3f} % / {r['window_latency_ms']['p99']:.2f}"


def row(name: str, ours, janus) -> str:
    def both(f, fmt=n):
        return f"{fmt(f(ours))} / {fmt(f(janus))}"

    lat = lambda r: f"{r['latency_ms']['p50']:.2f} / {r['latency_ms']['p99']:.2f}"  # noqa: E731
    loss = lambda r: f"{r['loss_ratio'] * 100:.3f} %"  # noqa: E731
    failed = lambda r: f" ({r['peers_failed']} failed)" if r["peers_failed"] else ""  # noqa: E731
    return (
        f"| {name} | {ours['participants']}{failed(ours)} / {janus['participants']}{failed(janus)} "
        f"| {both(lambda r: r['received_per_s'])} | {ratio(ours['received_per_s'], janus['received_per_s'])} "
        f"| {both(lambda r: r['server']['process_cpu_seconds'], lambda v: f'{v:.2f}')} "
        f"| {both(per_core)} | **{ratio(per_core(ours), per_core(janus))}** "
        f"| {loss(ours)} / {loss(janus)} | {lat(ours)} / {lat(janus)} "
        f"| {window(ours)}, {window(janus)} "
        f"| {ours['join_ms']['p95']:.0f} / {janus['join_ms']['p95']:.0f} "
        f"| {both(lambda r: r['server']['peak_rss_bytes'], mib)} "
        f"| {ours['generator_cpu_seconds']:.1f} / {janus['generator_cpu_seconds']:.1f} |"
    )


HEADER = (
    "| run | participants (ours / Janus) | received pkt/s (ours / Janus) | ratio "
    "| server CPU s (ours / Janus) | received pkt per server-core second (ours / Janus) "
    "| **ratio** | loss (ours / Janus) | latency p50 / p99 ms, ours / Janus "
    "| measured window only: loss / p99 ms, ours, Janus "
    "| join p95 ms (ours / Janus) | server peak RSS MiB (ours / Janus) "
    "| generator CPU s (ours / Janus) |\n" + "|-----" * 13 + "|"
)


def rate(r) -> str:
    """A join storm's step names its arrival rate."""
    return f" ({r['joins_per_s']} joins/s)" if r.get("joins_per_s") else ""


def table(out: pathlib.Path):
    """The Markdown table, and the knee searches found: [(name, ours, janus)]."""
    lines = [HEADER]
    knees = []
    for jpath in sorted(out.glob("janus-*.json")):
        name = jpath.name.removeprefix("janus-").removesuffix(".json")
        opath = out / f"{name}.json"
        if not opath.exists():
            continue
        ours, janus = load(opath), load(jpath)
        if isinstance(ours, list):
            knees.append((name, ours, janus))
            continue
        lines.append(row(name, ours, janus))
    for name, ours, janus in knees:
        # Step by step, as far as both searches went.
        for i, (o, j) in enumerate(zip(ours, janus)):
            lines.append(row(f"{name} step {i + 1}{rate(o)}", o, j))
        for label, runs in (("ours", ours), ("Janus", janus)):
            if len(runs) > len(ours if label == "Janus" else janus):
                for i, r in enumerate(runs[min(len(ours), len(janus)):], min(len(ours), len(janus))):
                    lines.append(
                        f"| {name} step {i + 1}{rate(r)} ({label} only) | {r['participants']} "
                        f"| {n(r['received_per_s'])} | | {r['server']['process_cpu_seconds']:.2f} "
                        f"| {n(per_core(r))} | | {r['loss_ratio'] * 100:.3f} % "
                        f"| {r['latency_ms']['p50']:.2f} / {r['latency_ms']['p99']:.2f} "
                        f"| {window(r)} | {r['join_ms']['p95']:.0f} | {mib(r['server']['peak_rss_bytes'])} "
                        f"| {r['generator_cpu_seconds']:.1f} |"
                    )
    return "\n".join(lines) + "\n", knees


# What the x axis counts, by knee search.
X_LABELS = {
    "knee-consult": "participants (consult, rooms of 3)",
    "knee-training": "participants (training: one presenter and the audience of one lecture)",
    "knee-join-storm": "joins per second (rooms of 3, publishing as they arrive)",
}


def plot(knee, path: pathlib.Path, title: str) -> None:
    plt = pyplot()
    if plt is None:
        return
    name, ours, janus = knee
    # A join storm steps its arrival rate up and is judged by join time, not media latency.
    storm = ours[0]["scenario"] == "join-storm"
    figure = "join_ms" if storm else "latency_ms"
    fig, (top, mid, bottom) = plt.subplots(3, 1, figsize=(8, 11), sharex=True)
    # One colour per server, one marker per figure.
    for label, runs, style, colour in (("huizhen", ours, "-", "C0"), ("Janus", janus, "--", "C1")):
        x = [r["joins_per_s"] if storm else r["participants"] for r in runs]
        top.plot(x, [r["received_per_s"] for r in runs], "o" + style, color=colour,
                 label=f"{label}: received packets/s")
        top.plot(x, [r["sent_per_s"] for r in runs], "x" + style, color=colour, alpha=0.4,
                 label=f"{label}: sent packets/s")
        mid.plot(x, [per_core(r) for r in runs], "s" + style, color=colour,
                 label=f"{label}: per server-core second")
        for key, marker in (("p50", "o"), ("p95", "s"), ("p99", "^")):
            bottom.plot(x, [r[figure][key] for r in runs], marker + style, color=colour,
                        label=f"{label} {key}")
    top.set_ylabel("packets / s")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    mid.set_ylabel("received packets per\nserver CPU second")
    mid.legend(fontsize=8)
    mid.grid(alpha=0.3)
    bottom.set_ylabel("join time (ms)" if storm else "added latency (ms)")
    bottom.set_yscale("log")
    bottom.set_xlabel(X_LABELS.get(name, "participants"))
    bottom.legend(fontsize=8, ncol=2)
    bottom.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    title = sys.argv[2] if len(sys.argv) > 2 else "huizhen and Janus VideoRoom, same generator"
    text, knees = table(out)
    (out / "side-by-side.md").write_text(text)
    print(text)
    for knee in knees:
        name = knee[0]
        suffix = "" if name == "knee-consult" else "-" + name.removeprefix("knee-")
        plot(knee, out / f"side-by-side{suffix}.png", f"{title}: {name.removeprefix('knee-')} knee")


if __name__ == "__main__":
    main()
