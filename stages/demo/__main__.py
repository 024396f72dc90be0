"""``python -m stages.demo OUT --init init.json --final final.json``: print and write the demo's verdict."""
from __future__ import annotations

import argparse

from stages.demo import render_markdown, summarize


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.demo", description=__doc__)
    parser.add_argument("out", help="the demo's output folder (summary.md is written there)")
    parser.add_argument("--init", required=True, help="metric card of the initial snapshot")
    parser.add_argument("--final", required=True, help="metric card of the final snapshot")
    args = parser.parse_args()
    criteria = summarize(args.out, args.init, args.final)
    print(render_markdown(criteria), end="")
    return 0  # the verdict is information, not an error: the demo ran


if __name__ == "__main__":
    raise SystemExit(main())
