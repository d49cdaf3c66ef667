#!/usr/bin/env python3
"""Plots a knee search (the JSON list `huizhen-loadtests --knee --json FILE` writes).

    python3 loadtests/plot.py KNEE.json OUT.png [TITLE]

Two panels against the number of participants: forwarded packets per second (and per
media-core second), and added latency p50/p95/p99 with the loss ratio. A join storm's search is
plotted against joins per second instead, with join time p50/p95/p99 and the errors. Needs
matplotlib (loadtests/plotting.py): without it, says so and plots nothing.
"""
import json
import sys

from plotting import pyplot


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    runs = json.load(open(sys.argv[1]))
    title = sys.argv[3] if len(sys.argv) > 3 else f"{runs[0]['scenario']}: knee search"
    storm = runs[0]["scenario"] == "join-storm"
    x = [r["joins_per_s"] if storm else r["participants"] for r in runs]
    plt = pyplot()
    if plt is None:
        return
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    top.plot(x, [r["server"]["packets_out_per_s"] for r in runs], "o-", label="forwarded packets/s")
    top.plot(
        x,
        [r["server"]["packets_out_per_media_cpu_second"] for r in runs],
        "s--",
        label="per media-core second",
    )
    top.set_ylabel("packets / s")
    top.legend()
    top.grid(alpha=0.3)
    figure, what = ("join_ms", "join time") if storm else ("latency_ms", "added latency")
    for key, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        bottom.plot(x, [r[figure][key] for r in runs], style, label=f"{what} {key}")
    bottom.set_ylabel("ms")
    bottom.set_xlabel("joins per second" if storm else "participants")
    loss = bottom.twinx()
    if storm:
        errors = [len(r["errors"]) + r["peers_failed"] for r in runs]
        loss.plot(x, errors, "k:", label="errors")
        loss.set_ylabel("errors")
    else:
        loss.plot(x, [r["loss_ratio"] * 100 for r in runs], "k:", label="loss %")
        loss.set_ylabel("loss %")
    bottom.legend(loc="upper left")
    loss.legend(loc="upper right")
    bottom.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)


if __name__ == "__main__":
    main()
