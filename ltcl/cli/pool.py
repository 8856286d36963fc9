"""``ltcl-pool``: build an OOD pool as one array, and check it for copies of the ID images.

    ltcl-pool build pool.npy --from /data/tinyimagenet/train --size 32
    ltcl-pool check pool.npy --against cifar10_train.npy cifar10_test.npy --out pool_check/

``check`` writes ``report.json`` / ``report.md`` (counts of exact, near and mirrored copies per
ID set), ``closest_pairs.png`` (pool image above its ID image) and ``exclude.npy`` (the pool
indices to drop), which ``ood.source.exclude_path`` reads (``ood=random300k`` and any .npy
pool); ``--fix clean.npy`` writes the pool without them. An argparse command, like
``ltcl-report``: it reads and writes files, no Hydra run directory.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ltcl.errors import LtclError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltcl-pool", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="images (folders, list files, arrays) -> one .npy pool")
    build.add_argument("out", type=Path, help="the pool's .npy (a manifest is written beside it)")
    build.add_argument("--from", dest="sources", nargs="+", required=True,
                       help="image folders, .txt lists of image paths, or uint8 .npy arrays")  # fmt: skip
    build.add_argument("--size", type=int, default=32, help="side in pixels (the ID resolution)")
    build.add_argument("--exclude-classes", nargs="*", default=[],
                       help="top-level class folders to leave out (strict OOD: e.g. wnids)")  # fmt: skip
    check = sub.add_parser("check", help="copies of ID images in a pool: exact, near, flipped")
    check.add_argument("pool", type=Path, help="the pool's uint8 N x H x W x 3 .npy")
    check.add_argument("--against", nargs="+", required=True, metavar="ID",
                       help="ID images: uint8 .npy arrays or image folders (train, test)")  # fmt: skip
    check.add_argument("--out", type=Path, default=None, help="default: <pool>.check/")
    check.add_argument("--max-distance", type=int, default=4,
                       help="near copy: dHash Hamming distance at most this (of 64 bits)")  # fmt: skip
    check.add_argument("--min-correlation", type=float, default=0.9,
                       help="a near copy's 16 x 16 grey thumbnails correlate at least this")  # fmt: skip
    check.add_argument("--fix", type=Path, default=None, help="write the pool without the copies")
    return parser


def _images(source: str, size: int) -> np.ndarray:
    """ID images: a .npy array as it is, or a folder decoded at the pool's size."""
    from ltcl.data.pool_tools import decode, list_images, load_array

    if source.endswith(".npy"):
        return load_array(source)
    return np.stack([decode(f, size) for f in list_images(source)])


def run_check(args) -> dict:
    from ltcl.data.pool_tools import check_pool, load_array, pairs_grid, write_clean_pool

    pool = load_array(args.pool)
    if not 0 <= args.max_distance <= 16:
        raise LtclError(f"--max-distance {args.max_distance}: use 0 (exact grey pattern) to 16")
    references = {
        Path(a).name.removesuffix(".npy"): _images(a, pool.shape[1]) for a in args.against
    }
    out = args.out or args.pool.with_name(args.pool.name + ".check")
    out.mkdir(parents=True, exist_ok=True)
    report = check_pool(pool, references, args.max_distance, args.min_correlation)
    report["pool"] = str(args.pool)
    report["command"] = "ltcl-pool " + shlex.join(sys.argv[1:])
    np.save(out / "exclude.npy", np.asarray(report["flagged"], dtype=np.int64))
    grid = pairs_grid(pool, references, report["closest_pairs"][:16], out / "closest_pairs.png")
    if args.fix is not None:
        report["clean_pool"] = {"path": str(args.fix),
                                "count": write_clean_pool(pool, report["flagged"], args.fix)}  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# {args.pool.name} against {', '.join(references)}", "",
             f"Pool: {len(pool):,} images; near = dHash within {args.max_distance} of 64 bits "
             f"and 16 x 16 grey thumbnails correlating >= {args.min_correlation}.", "",
             "| ID set | images | exact | near | flipped | pool images flagged |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, row in report["sets"].items():
        lines.append(f"| {name} | {row['size']:,} | {row['exact']} | {row['near']} | "
                     f"{row['flipped']} | {len(row['pool_indices'])} |")  # fmt: skip
    lines += ["", f"Flagged in all: {len(report['flagged'])} (exclude.npy)"]
    if grid:
        lines += ["", "![closest pairs](closest_pairs.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:-2] if grid else lines))
    print(f"[ltcl-pool] {out / 'report.md'}, {out / 'exclude.npy'}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "build":
            from ltcl.data.pool_tools import build_pool

            manifest = build_pool(
                args.sources, args.out, args.size, args.exclude_classes,
                command="ltcl-pool " + shlex.join(sys.argv[1:] if argv is None else argv),
            )  # fmt: skip
            print(f"[ltcl-pool] {manifest['count']:,} images -> {args.out} (sha256 "
                  f"{manifest['sha256'][:12]}...), manifest beside it")  # fmt: skip
        else:
            run_check(args)
    except LtclError as error:
        print(f"ltcl-pool: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
