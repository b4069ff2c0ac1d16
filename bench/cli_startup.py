"""Start-up time of the kodex command line (prints figures; not a test).

    python -m bench.cli_startup [--repeat 7]

Each figure is the wall time of a fresh process, --repeat times: median (min–max). Measured: a bare
`python -c "import typer"` (the floor any Typer CLI pays), a one-command Typer app's `--help` (what rendering help
with rich adds), `kodex --help`, `kodex policy check` (loads and checks
the bundled policy) and `kodex explain` of a reader of the bundled samples (samples/readers.jsonl, as the README
does: no store needed, so it works on a fresh machine). Then the ratio of `--help` to the bare import; the target
is 2× or less (issue 17).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "readers.jsonl"
# What any Typer CLI pays to print its help (typer renders it with rich): the floor below kodex --help.
TINY_APP = "import typer; app = typer.Typer(); app.command()(lambda: None); app()"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    kodex = str(Path(sys.executable).parent / "kodex")
    reader = _first_reader()
    commands = {
        'python -c "import typer"': [sys.executable, "-c", "import typer"],
        "a one-command Typer app's --help": [sys.executable, "-c", TINY_APP, "--help"],
        "kodex --help": [kodex, "--help"],
        "kodex policy check": [kodex, "policy", "check"],
        f"kodex explain --reader {reader} --as-of 2026-11-22 samples/readers.jsonl": [
            kodex, "explain", "--reader", reader, "--as-of", "2026-11-22", str(SAMPLE),
        ],
    }  # fmt: skip
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    medians = {}
    for label, command in commands.items():
        times = [_seconds(command) for _ in range(args.repeat)]
        medians[label] = statistics.median(times)
        print(f"{label:75} {medians[label]:6.3f} s  ({min(times):.3f}–{max(times):.3f}, {args.repeat} runs)")
    ratio = medians["kodex --help"] / medians['python -c "import typer"']
    print(f"kodex --help / bare import typer: {ratio:.1f}× (target: 2× or less)")


def _seconds(command: list[str]) -> float:
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("KODEX_POLICY", None)  # the bundled policy
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    return time.perf_counter() - started


def _first_reader() -> str:
    import json  # noqa: PLC0415

    with SAMPLE.open(encoding="utf-8") as lines:
        for text in lines:
            record = json.loads(text)
            if record["type"] == "reader":
                return str(record["id"])
    raise SystemExit(f"{SAMPLE}: no reader")


if __name__ == "__main__":
    main()
