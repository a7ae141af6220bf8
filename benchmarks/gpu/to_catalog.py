"""Record in the format catalog which offload modes each format was seen to run with (or fail with).

    python benchmarks/gpu/to_catalog.py benchmarks/results/h100-2026-11-22/matrix.jsonl
    python benchmarks/gpu/to_catalog.py benchmarks/results/h200-2026-11-22/matrix.jsonl "H200"

Rows with a compile choice and no offload record that format's compile compatibility; rows combining offload and
compile are not format-specific and go, by hand, into the catalog's `rules`.

Measured entries go first in each format's `compat` list, so they take precedence over published or
unverified ones; running it again replaces the entries it wrote before (same source string).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CATALOG = Path(__file__).resolve().parents[2] / "src" / "fluxplan" / "catalog" / "data" / "formats.json"


def main() -> None:
    results = Path(sys.argv[1])
    gpu = sys.argv[2] if len(sys.argv) > 2 else "H100 80GB HBM3"  # the GPU the matrix ran on
    rows = [r for r in (json.loads(x) for x in results.read_text().splitlines()) if "superseded" not in r]
    source = f"measured: {gpu}, 2026-11-22, pipeline matrix ({results.as_posix()})"
    raw = json.loads(CATALOG.read_text())
    for fmt in raw["formats"]:
        mine = [r for r in rows if r["format"] == fmt["key"]
                and (r["offload"] != "none") != (r.get("compile", "none") != "none")]  # one axis at a time
        fmt["compat"] = [c for c in fmt["compat"] if c.get("source") != source]
        entries = []
        for r in mine:
            axis = {"offload": [r["offload"]]} if r["offload"] != "none" else {"compile": [r["compile"]]}
            if r.get("ok"):
                entries.append({**axis, "status": "ok", "source": source})
            else:  # a timeout is not a failure of the combination: it stays unverified, with the reason
                status = "unverified" if "timeout" in r.get("error", "") else "fails"
                entries.append({**axis, "status": status, "reason": r.get("error", "failed"), "source": source})
        fmt["compat"] = entries + fmt["compat"]
        none = next((r for r in rows if r["format"] == fmt["key"] and r["offload"] == "none"
                     and r.get("compile", "none") == "none"), None)
        if none is not None and not none.get("ok") and "timeout" in none.get("error", "") and not fmt.get("unavailable"):
            fmt["unavailable"] = (f"loading did not finish within the benchmark's time limit on an {gpu} "
                                  f"({results.as_posix()})")
    CATALOG.write_text(json.dumps(raw, indent=1) + "\n")
    print(f"updated {CATALOG}")


if __name__ == "__main__":
    main()
