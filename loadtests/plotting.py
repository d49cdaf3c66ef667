#!/usr/bin/env python3
"""matplotlib for the benchmark scripts, installed with pip when missing.

    python3 loadtests/plotting.py    # install now (bench.sh does, before its network namespace)

Where it cannot be installed (no network, or a system Python that refuses pip: install the
Debian package python3-matplotlib then), the scripts still write their tables and JSON and only
skip the plots, saying so.
"""
import os
import subprocess
import sys


def pyplot():
    """matplotlib.pyplot with the file-only backend, or None (after a warning) if unavailable."""
    try:
        import matplotlib
    except ImportError:
        command = [sys.executable, "-m", "pip", "install", "-q", "matplotlib"]
        if os.geteuid() != 0:
            command.insert(4, "--user")
        if subprocess.run(command).returncode != 0:
            print("plots skipped: matplotlib is missing and pip could not install it "
                  "(try the Debian package python3-matplotlib)", file=sys.stderr)
            return None
        import site
        import importlib

        # A --user install lands in a directory that was not on the path at start-up.
        site.addsitedir(site.getusersitepackages())
        importlib.invalidate_caches()
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


if __name__ == "__main__":
    pyplot()
