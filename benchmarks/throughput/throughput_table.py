"""The GPU campaign's throughput table: ltcl's methods against the plain reference loop.

    python benchmarks/throughput/throughput_table.py <out dir>

Reads <out dir>/plain.json (benchmarks/throughput/plain_simclr_reference.py), <out dir>/card.txt and the
results.json of the ltcl runs under <out dir>/runs/<name>/, and writes <out dir>/throughput.md
and throughput.json. images/s of an ltcl run = ID training images per epoch / median epoch time
(the guide also processes its sampled OOD images, which this count leaves out).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main(out_dir: str) -> None:
    out = Path(out_dir)
    plain = json.loads((out / "plain.json").read_text())
    card = (out / "card.txt").read_text().strip() if (out / "card.txt").is_file() else "?"
    rows = [{"run": "plain PyTorch loop (reference)", "images_per_s": plain["images_per_s"],
             "ratio": 1.0, "memory_gb": plain.get("max_memory_gb")}]  # fmt: skip
    for results in sorted((out / "runs").glob("*/results.json")):
        r = json.loads(results.read_text())
        times = r.get("epoch_times_s") or []
        if len(times) > 1:
            times = times[1:]  # the first epoch carries compilation and cache warm-up
        if not times:
            continue
        ips = r["train_images"] / statistics.median(times)
        rows.append({"run": f"ltcl {results.parent.name}", "images_per_s": round(ips, 1),
                     "ratio": round(ips / plain["images_per_s"], 2), "epochs": r["epochs"]})  # fmt: skip
    lines = [f"Card: {card}", "", "| run | images/s | ratio to the plain loop |", "|---|---|---|"]
    lines += [f"| {x['run']} | {x['images_per_s']} | {x['ratio']} |" for x in rows]
    (out / "throughput.md").write_text("\n".join(lines) + "\n")
    (out / "throughput.json").write_text(json.dumps({"card": card, "rows": rows}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
