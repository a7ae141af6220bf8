"""Record in the format catalog which offload modes each format was seen to run with (or fail with).

    python benchmarks/gpu/to_catalog.py benchmarks/results/h100-2026-11-22/matrix.jsonl

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
    rows = [json.loads(x) for x in results.read_text().splitlines()]
    source = f"measured: H100 80GB HBM3, 2026-11-22, pipeline matrix ({results.as_posix()})"
    raw = json.loads(CATALOG.read_text())
    for fmt in raw["formats"]:
        mine = [r for r in rows if r["format"] == fmt["key"] and r["offload"] != "none"]
        fmt["compat"] = [c for c in fmt["compat"] if c.get("source") != source]
        entries = []
        for r in mine:
            if r.get("ok"):
                entries.append({"offload": [r["offload"]], "status": "ok", "source": source})
            else:
                entries.append({"offload": [r["offload"]], "status": "fails", "reason": r.get("error", "failed"),
                                "source": source})
        fmt["compat"] = entries + fmt["compat"]
        none = next((r for r in rows if r["format"] == fmt["key"] and r["offload"] == "none"), None)
        if none is not None and not none.get("ok") and "timeout" in none.get("error", "") and not fmt.get("unavailable"):
            fmt["unavailable"] = ("loading did not finish within the benchmark's time limit on an H100 "
                                  f"({results.as_posix()})")
    CATALOG.write_text(json.dumps(raw, indent=1) + "\n")
    print(f"updated {CATALOG}")


if __name__ == "__main__":
    main()
