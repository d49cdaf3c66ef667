#!/usr/bin/env python3
"""The scaling run's report: OUT/workers-N/knee-consult.json for each worker count N.

    python3 loadtests/scaling.py OUT [TITLE]

Writes OUT/scaling.md (a table) and OUT/scaling.png (largest load held and forwarded packets
per second, and packets per media-core second, against media workers). A step is held when
loss is at most 1 % and p99 added latency at most 50 ms (the generator's knee limits). The
step after the last one held says what gave out: the generator's cores or the server's media
workers, by which was closer to fully busy. Plots need matplotlib (loadtests/plotting.py).
"""
import json
import os
import pathlib
import re
import sys

from plotting import pyplot

MAX_LOSS = 0.01
MAX_P99_MS = 50.0


def n(v: float) -> str:
    return f"{v:,.0f}".replace(",", " ")


def held(r) -> bool:
    return r["loss_ratio"] <= MAX_LOSS and r["latency_ms"]["p99"] <= MAX_P99_MS


def busy(r, workers: int, gen_cores: int):
    """Media threads' and generator's share of their cores over the step."""
    secs = r["duration_s"] or 1.0
    media = r["server"]["media_cpu_seconds"] / (secs * workers)
    gen = r["generator_cpu_seconds"] / (secs * max(gen_cores, 1))
    return media, gen


def rows(out: pathlib.Path, cores: int):
    found = []
    for d in out.iterdir():
        m = re.fullmatch(r"workers-(\d+)", d.name)
        knee = d / "knee-consult.json"
        if m and knee.exists():
            found.append((int(m.group(1)), json.loads(knee.read_text())))
    for workers, runs in sorted(found):
        gen_cores = cores - workers if cores > workers else cores
        kept = [r for r in runs if held(r)]
        best = max(kept, key=lambda r: r["participants"]) if kept else None
        broke = next((r for r in runs if not held(r)), None)
        limit = "not reached"
        if broke is not None:
            media, gen = busy(broke, workers, gen_cores)
            limit = f"{'generator' if gen >= media else 'server'} (media {media:.0%}, generator {gen:.0%})"
        yield workers, best, broke, limit


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    title = sys.argv[2] if len(sys.argv) > 2 else "consult knee against media workers"
    cores = os.cpu_count() or 1
    table = [
        "| media workers | largest load held (participants) | forwarded packets/s there | "
        "packets out per media-core second there | p99 ms there | first step that broke | what gave out |",
        "|-----|-----|-----|-----|-----|-----|-----|",
    ]
    xs, held_pkts, per_core = [], [], []
    for workers, best, broke, limit in rows(out, cores):
        if best is None:
            table.append(f"| {workers} | none | | | | {broke['participants']} | {limit} |")
            continue
        s = best["server"]
        xs.append(workers)
        held_pkts.append(s["packets_out_per_s"])
        per_core.append(s["packets_out_per_media_cpu_second"])
        table.append(
            f"| {workers} | {best['participants']} | {n(s['packets_out_per_s'])} "
            f"| {n(s['packets_out_per_media_cpu_second'])} | {best['latency_ms']['p99']:.2f} "
            f"| {broke['participants'] if broke else '—'} | {limit} |"
        )
    (out / "scaling.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    if not xs:
        sys.exit("no worker count held any step")
    plt = pyplot()
    if plt is None:
        return
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    top.plot(xs, held_pkts, "o-", label="forwarded packets/s at the largest load held")
    if xs[0] == 1:
        top.plot(xs, [held_pkts[0] * x for x in xs], ":", color="grey", label="linear from 1 worker")
    top.set_ylabel("packets / s")
    top.legend()
    top.grid(alpha=0.3)
    bottom.plot(xs, per_core, "s-", label="packets out per media-core second")
    bottom.set_ylabel("packets / media-core s")
    bottom.set_xlabel("media workers (one core each)")
    bottom.set_xticks(xs)
    bottom.set_ylim(bottom=0)
    bottom.legend()
    bottom.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=100)


if __name__ == "__main__":
    main()
