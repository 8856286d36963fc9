"""Where the OOD picks of a sampling round land, head to tail, for several pick rules on the same
candidates: the share of picks whose nearest ID training images (k = 10, majority) belong to each
class and to the many / medium / few groups, in the guide's own embedding and in a fixed
reference embedding (another run's network, e.g. SimCLR on the same split).

    python benchmarks/analyses/pick_measure.py <guide run dir> --reference <ckpt> [--round R] [--out DIR]

<guide run dir> holds results.json, checkpoints/last.ckpt and split/ of an ltcl-train run with
a sampler (the guide, COLT). The candidates are the pool images the run embedded at round R
(default: its last round). Rules (each a sampler setting, docs/method.md "Picks that reach the
tail"): the run's own, random, COLT's rule, (a) small clusters without budget, (b) 3x the
clusters with the gap or the sparsity budget, (c) the sparsest ID regions without clusters.
COLT's rule needs each ID image's tail score: one pass over the ID set with the run's training
augmentation scores it (COLT's form, batches of the run's size) [recon, for the measure].
Labels are read for the analysis only. Writes pick_measure.json, pick_measure.md and
pick_measure.png into --out (default: <run dir>/pick_measure).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from sampler_analysis import current, write_report  # this folder: the script's sys.path[0]

from ltcl.data.splits import class_groups
from ltcl.evaluation.pick_measure import nearest_id_class, pick_shares
from ltcl.models.checkpoints import load_embedding_network, read_checkpoint
from ltcl.ood.density import knn_radius
from ltcl.ood.rounds import SamplerConfig
from ltcl.ood.strategies import STRATEGIES
from ltcl.ood.tail_score import colt_tail_score

# The two readings of "near a class": the plain majority of the 10 nearest ID images (JSON key
# "spaces"), and the vote weighted by 1 / class size ("balanced").
VOTES = {"plain": "spaces", "balanced": "balanced"}
GROUPS = ("many", "medium", "few")


def rules(sampler: dict, num_classes: int) -> dict[str, dict]:
    """Name -> sampler config: the run's own and the variants, on the run's budget and seed."""
    run = {**sampler, "kmeans": sampler.get("kmeans", "ltcl")}
    kl = {**run, "strategy": "kl_cluster", "kmeans": "ltcl"}
    return {
        "as run": run,
        "random": {**kl, "strategy": "random"},
        "COLT's rule": {**kl, "strategy": "colt", "tail_score": "colt", "kmeans_inits": 10,
                        "budget_remainder": "last", "num_clusters": num_classes},
        "(a) clusters < 25% of the mean: no budget": {**kl, "min_cluster_share": 0.25},
        "(b) 3x clusters, gap budget": {**kl, "num_clusters": 3 * num_classes,
                                        "min_cluster_share": 0.25},
        "(b) 3x clusters, sparsity budget": {**kl, "num_clusters": 3 * num_classes,
                                             "budget_rule": "sparsity", "min_cluster_share": 0.25},
        "(c) sparsest 10% of ID images": {**kl, "strategy": "sparse_knn", "anchor_share": 0.1},
        "(c) sparsest 3% of ID images": {**kl, "strategy": "sparse_knn", "anchor_share": 0.03},
    }  # fmt: skip


@torch.no_grad()
def embed(network, datamodule, which, indices=None):
    network.eval()
    z, labels = datamodule.embed(
        lambda x: torch.nn.functional.normalize(network(x), dim=1), which, indices,
        device=torch.device("cpu"), modules=[network], to_cpu=True, batch_size=512,
    )  # fmt: skip
    return z, labels


@torch.no_grad()
def colt_scores(network, datamodule, topk: int, temperature: float) -> torch.Tensor:
    """Each ID image's COLT tail score from one pass of augmented view pairs."""
    scores = torch.full((len(datamodule.train_set),), float("nan"), dtype=torch.float64)
    network.eval()
    for raw, _, _ in datamodule.train_dataloader():
        part = datamodule.on_after_batch_transfer(raw, 0)["id"]
        v1, v2 = part["views"]
        z1 = torch.nn.functional.normalize(network(v1), dim=1)
        z2 = torch.nn.functional.normalize(network(v2), dim=1)
        s = colt_tail_score(z1, z2, z1.shape[0], temperature, topk, gather=False)
        scores[part["index"]] = s.double()
    scores[scores.isnan()] = float(scores[~scores.isnan()].mean())  # the dropped last batch
    return scores


def measure(run_dir: Path, reference: Path | None, round_index: int | None) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    config = current(results["config"])  # targets moved since the run
    sampler = dict(config["method"]["sampler"])
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    state = read_checkpoint(checkpoint).get("ood_sampler") or {}
    round_index = int(state.get("round", 1)) - 1 if round_index is None else round_index
    datamodule = instantiate(config["data"], split_dir=str(run_dir / "split"))
    pool = instantiate(config["ood"])
    datamodule.attach_ood_pool(pool)
    datamodule.setup("fit")
    pool.setup()
    candidates = pool.candidates(round_index)
    id_labels = torch.as_tensor(
        np.asarray(datamodule.train_set.source.labels)[datamodule.train_set.indices]
    )
    num_classes = int(config["data"]["num_classes"])
    groups = class_groups(np.bincount(id_labels.numpy(), minlength=num_classes))
    spaces = {"guide": load_embedding_network(checkpoint)[0]}
    if reference is not None:
        spaces["reference"] = load_embedding_network(reference)[0]
    embedded = {}
    for name, network in spaces.items():
        started = time.perf_counter()
        id_z, _ = embed(network, datamodule, "train")
        cand_z, _ = embed(network, datamodule, "ood", candidates)
        embedded[name] = (id_z, cand_z)
        print(f"[pick_measure] {name} space: {len(id_z)} ID, {len(cand_z)} candidates "
              f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
    id_z, cand_z = embedded["guide"]
    tail = colt_scores(spaces["guide"], datamodule, sampler.get("colt_topk", 10),
                       float(config["method"].get("temperature", 0.2)))  # fmt: skip
    out = {"run": str(run_dir), "round": round_index, "candidates": len(candidates),
           "budget": sampler["budget"], "groups": groups,
           "class_counts": np.bincount(id_labels.numpy(), minlength=num_classes).tolist(),
           "rules": {}}  # fmt: skip
    # Each candidate's nearest ID class, once per vote and space: a rule's picks index into it.
    near_class = {
        (vote, space): nearest_id_class(space_cand, space_id, id_labels,
                                        balanced=vote == "balanced")
        for vote in VOTES for space, (space_id, space_cand) in embedded.items()
    }  # fmt: skip
    # What any rule could reach: the candidates that each vote places near a class (labels:
    # the bound of an oracle, no rule has them).
    out["candidates_near"] = {
        vote: {space: pick_shares(near_class[vote, space], num_classes, groups)
               for space in embedded}
        for vote in VOTES
    }  # fmt: skip
    # Does sparsity find the tail? The classes of the sparsest ID images (largest k-NN radius,
    # the sampler's density_k), against the whole training set's shares.
    out["sparsest_id"] = {"all": pick_shares(id_labels, num_classes, groups)["groups"]}
    for space, (space_id, _) in embedded.items():
        order = torch.argsort(knn_radius(space_id, int(sampler.get("density_k", 10))).cpu(),
                              descending=True, stable=True)  # fmt: skip
        for share in (0.03, 0.1):
            sparsest = id_labels[order[: max(1, round(share * len(order)))]]
            out["sparsest_id"][f"{space} {share:.0%}"] = pick_shares(sparsest, num_classes, groups)[
                "groups"
            ]
    for name, settings in rules(sampler, num_classes).items():
        config_ = SamplerConfig(**settings)
        strategy = STRATEGIES[config_.strategy](config_)
        strategy.setup(len(id_z))
        if config_.strategy == "colt":
            strategy.tail_scores.update(torch.arange(len(id_z)), tail)
        started = time.perf_counter()
        selection = strategy.select(id_z, cand_z, seed=config_.seed + round_index)
        entry = {"settings": {k: settings[k] for k in sorted(settings)},
                 "budgets": [int(b) for b in selection.budgets],
                 "cluster_sizes": [int(s) for s in selection.cluster_sizes],
                 "seconds": round(time.perf_counter() - started, 2),
                 "spaces": {}, "balanced": {}}  # fmt: skip
        for (vote, space), classes in near_class.items():
            picked = classes[torch.as_tensor(selection.local)]
            entry[VOTES[vote]][space] = pick_shares(picked, num_classes, groups)
        out["rules"][name] = entry
        shares = {f"{s} {v}": entry[VOTES[v]][s]["groups"]["few"] for v in VOTES for s in spaces}
        print(f"[pick_measure] {name}: few share {shares}")
    return out


def table(out: dict, vote: str = "plain") -> str:
    key = VOTES[vote]
    spaces = list(next(iter(out["rules"].values()))[key])
    head = ["rule"] + [f"{g} ({s})" for s in spaces for g in ("many", "medium", "few")]
    head += [f"few / random ({s})" for s in spaces]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    random = out["rules"]["random"][key]
    for name, entry in out["rules"].items():
        cells = [name] + [f"{entry[key][s]['groups'][g]:.1f}" for s in spaces
                          for g in ("many", "medium", "few")]  # fmt: skip
        cells += [f"{entry[key][s]['groups']['few'] / max(1e-9, random[s]['groups']['few']):.2f}"
                  for s in spaces]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    near = out.get("candidates_near", {}).get(vote)
    if near:  # the oracle bound: every candidate near the few classes picked
        best = [min(100.0, near[s]["groups"]["few"] * out["candidates"] / out["budget"])
                for s in spaces]  # fmt: skip
        cells = ["bound: every candidate near few picked (labels)"]
        for b in best:
            cells += ["", "", f"{b:.1f}"]
        cells += [f"{b / max(1e-9, random[s]['groups']['few']):.2f}"
                  for s, b in zip(spaces, best, strict=True)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(out["class_counts"])
    order = np.argsort(-counts, kind="stable")
    spaces = list(next(iter(out["rules"].values()))["spaces"])
    fig, axes = plt.subplots(len(VOTES), len(spaces), figsize=(6 * len(spaces), 4 * len(VOTES)),
                             squeeze=False)  # fmt: skip
    for row, vote in zip(axes, VOTES, strict=True):
        for ax, space in zip(row, spaces, strict=True):
            for name, entry in out["rules"].items():
                share = np.asarray(entry[VOTES[vote]][space]["per_class"])[order]
                style = "--" if name in ("random", "COLT's rule") else "-"
                ax.plot(range(len(order)), share, style, marker="o", ms=3, label=name)
            if vote == "plain":  # the tail's shares are below 1 %
                ax.set_yscale("symlog", linthresh=1.0)
            ax.set_xticks(range(len(order)), [f"{c}\n({counts[c]})" for c in order], fontsize=7)
            ax.set_xlabel("ID class (training images), head → tail")
            ax.set_ylabel("share of picks nearest to the class (%)")
            ax.set_title(f"round {out['round']}: {space} embedding, {vote} vote")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--reference", type=Path, help="a checkpoint whose embedding is fixed")
    parser.add_argument("--round", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = measure(args.run_dir, args.reference, args.round)
    title = f"Where the picks land: round {out['round']}, {out['budget']} picks of {out['candidates']} candidates"
    text = (f"# {title}\n\nShares of picks (%) by the class group of their 10 nearest ID "
            f"training images.\n\n## Plain vote (majority of the 10)\n\n{table(out)}\n\n"
            f"## Balanced vote (each neighbour weighs 1 / its class's ID count)\n\n"
            f"{table(out, 'balanced')}\n")  # fmt: skip
    text += "\n## The classes of the sparsest ID images (share %, largest k-NN radius)\n\n"
    text += "| ID images | many | medium | few |\n|---|---|---|---|\n"
    for name, shares in out["sparsest_id"].items():
        text += f"| {name} | " + " | ".join(f"{shares[g]:.1f}" for g in GROUPS) + " |\n"
    write_report(args.out or args.run_dir / "pick_measure", "pick_measure", out, text, plot)


if __name__ == "__main__":
    main()
