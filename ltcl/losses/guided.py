"""Stage-2 losses (docs/method.md, "Stage 2"): the guided contrastive loss L_GCL and the distillation L_DL.

A frozen copy of the stage-1 network is the guide. For B local images with two views, the
student gives embeddings u1, u2 (B, D) and the guide gives v1, v2 (B, D') on the same views,
without gradient. Everything is L2-normalised here. Rows (anchors) are the 2B local views
``cat([u1, u2])``; columns (candidates) are the 2G gathered views ``cat([all_u1, all_u2])``,
G = B x world_size, and the guide's candidates are gathered in the same order. With
S_g[i, j] = <u_i, u_j> and S_f[i, j] = <v_i, v_j>, the anchor's own column is excluded
everywhere.

Guided contrastive loss L_GCL [paper: the guide selects positives and negatives and sets the
strengths of attraction and repulsion; form recon]:

    G(i) = top-k_pos by S_f of { j : j != i, j != other view of i, S_f[i, j] >= delta }
    P(i) = { other view of i } u G(i),        N(i) = { n : n != i, n not in P(i) }
    w+_ip = 1 for the other view, max(S_f[i, p], 0) for p in G(i)       (or 1: switch off)
    w-_in = (1 - S_f[i, n]) / mean_{n' in N(i)} (1 - S_f[i, n'])         (or 1: switch off)

    L_GCL = mean_i -(1 / sum_p w+_ip) sum_{p in P(i)} w+_ip log( e^{S_g[i,p]/tau} /
            ( sum_{p' in P(i)} e^{S_g[i,p']/tau} + sum_{n in N(i)} w-_in e^{S_g[i,n]/tau} ) )

With no guided positives (delta > 1 or k_pos = 0) and w- = 1, L_GCL is NT-Xent term by term.

Two variants, each off by default (docs/method.md, "Stage 2 variants"):

- density-aware repulsion (``density_k = k > 0``): with rho_n the mean guide similarity of
  candidate n to its k nearest other candidates, w-_in is proportional to
  (1 - S_f[i, n]) x (1 - rho_n) (or (1 - rho_n) alone without repulsion weights), again with
  mean 1 over N(i): negatives from crowded (head) regions of the guide's space push less.
- a memory bank of earlier views (``bank``): M more candidates with guide and (stale, detached)
  student embeddings that may be chosen as guided positives by the same rule (top-k_pos over
  the batch and the bank together) but are never negatives.
The repulsion weights push probable false negatives (guide-similar views) less and clear
negatives more, with a mean weight of 1 per anchor so that the overall repulsion keeps the
scale of NT-Xent.

Distillation L_DL [paper: transfer the guide's embedding space; form recon]:

    relational (default): mean_i KL( softmax_{j != i}(S_f[i, j] / tau_t) || softmax_{j != i}(S_g[i, j] / tau_s) )
    feature (option):     mean_i (1 - <u_i, v_i>)
    both (option):        relational + feature

docs/method.md's stage-2 objective is ``L_GCL + lambda_dl * L_DL``; the weighting belongs to the
caller. Every loss is the mean over the local anchors: with the same B on every rank, DDP's
gradient average then equals the gradient of the global mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ltcl.errors import ConfigError
from ltcl.losses.nt_xent import check_views, two_view_layout
from ltcl.utils import distributed
from ltcl.utils.validate import check_temperature

DISTILLATION_MODES = ("relational", "feature", "both")
# The student's distillation on backbone features phi(x) rather than on the embeddings (the
# feature form applied one layer down); the caller passes phi of both networks.
BACKBONE_DISTILLATION = "backbone"

# Floor of the mean (1 - S_f) over an anchor's negatives before dividing by it: only reached
# when every negative coincides with the anchor in guide space (all weights are then 0).
_REPULSION_EPS = 1e-8


@dataclass(frozen=True)
class GuidedWeights:
    """The guide's choices for every (local anchor, gathered candidate) pair, all (2B, 2G).

    `attraction` is w+ (0 outside P(i)), `repulsion` is w- (0 outside N(i)). The own column
    is in neither P(i) nor N(i).
    """

    guide_similarity: torch.Tensor  # S_f, float
    guided: torch.Tensor  # bool, G(i)
    positive: torch.Tensor  # bool, P(i) = other view u G(i)
    negative: torch.Tensor  # bool, N(i)
    attraction: torch.Tensor  # w+
    repulsion: torch.Tensor  # w-


@dataclass(frozen=True)
class BankView:
    """M earlier views: normalised guide (M, D') and student (M, D) embeddings, labels (M,)."""

    guide: torch.Tensor
    student: torch.Tensor
    labels: torch.Tensor


def check_density_k(density_k: int) -> None:
    if isinstance(density_k, bool) or not isinstance(density_k, int) or density_k < 0:
        raise ConfigError(
            f"density_k must be an int >= 0, got {density_k!r}; 0 turns density-aware repulsion "
            "off, k > 0 measures a negative's crowding by its k nearest views in guide space"
        )


@torch.no_grad()
def guide_density(v_candidates: torch.Tensor, k: int) -> torch.Tensor:
    """rho_n (2G,): mean guide similarity of each candidate to its k nearest other candidates."""
    similarity = v_candidates @ v_candidates.T
    similarity.fill_diagonal_(float("-inf"))
    k = min(k, similarity.shape[0] - 1)
    return similarity.topk(k, dim=1).values.mean(dim=1)


def check_guided_selection(delta: float, k_pos: int) -> None:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or math.isnan(delta):
        raise ConfigError(
            f"delta must be a number in [-1, inf), got {delta!r}; docs/method.md starts with 0.8, "
            "and delta > 1 turns guided positives off"
        )
    if delta < -1:
        raise ConfigError(
            f"delta must be >= -1 (a cosine similarity threshold), got {delta}; docs/method.md "
            "starts with 0.8, and delta > 1 turns guided positives off"
        )
    if isinstance(k_pos, bool) or not isinstance(k_pos, int) or k_pos < 0:
        raise ConfigError(
            f"k_pos must be an int >= 0, got {k_pos!r}; docs/method.md starts with 5, and 0 turns "
            "guided positives off"
        )


def _check_guide(u1: torch.Tensor, u2: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor) -> None:
    check_views(u1, u2)
    check_views(v1, v2)
    if v1.shape[0] != u1.shape[0]:
        raise ConfigError(
            f"the guide views hold {v1.shape[0]} images and the student views {u1.shape[0]}; "
            "pass the guide's embeddings of the same B images and views"
        )


@torch.no_grad()
def _guide_views(
    v1: torch.Tensor, v2: torch.Tensor, gather: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised guide anchors (2B, D') and candidates (2G, D'), no gradient, same order as u.

    At least float32, so that the delta threshold and the top-k do not depend on a
    half-precision rounding.
    """
    dtype = torch.promote_types(v1.dtype, torch.float32)
    v1 = F.normalize(v1.detach().to(dtype), dim=1)
    v2 = F.normalize(v2.detach().to(dtype), dim=1)
    if gather:
        all_v1, all_v2 = distributed.gather_no_grad(v1), distributed.gather_no_grad(v2)
    else:
        all_v1, all_v2 = v1, v2
    return torch.cat([v1, v2]), torch.cat([all_v1, all_v2])


@torch.no_grad()
def guided_positive_selection(
    guide_similarity: torch.Tensor,
    own_column: torch.Tensor,
    positive_column: torch.Tensor,
    delta: float = 0.8,
    k_pos: int = 5,
) -> torch.Tensor:
    """The guided positives G(i) as a bool mask (2B, 2G) (the other view is not in it).

    Eligible: every column but the own one and the other view with S_f >= delta. Of those,
    the k_pos most guide-similar are kept; ties go to the lowest column index (a stable
    sort, so the choice is the same on 1 and on N processes). ``delta > 1`` or
    ``k_pos == 0`` select nothing.
    """
    check_guided_selection(delta, k_pos)
    rows, columns = guide_similarity.shape
    selected = torch.zeros((rows, columns), dtype=torch.bool, device=guide_similarity.device)
    if delta > 1 or k_pos == 0:
        return selected
    row_index = torch.arange(rows, device=guide_similarity.device)
    eligible = guide_similarity >= delta
    eligible[row_index, own_column] = False
    eligible[row_index, positive_column] = False
    scores = guide_similarity.masked_fill(~eligible, float("-inf"))
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k_pos]
    selected.scatter_(1, order, True)
    return selected & eligible


@torch.no_grad()
def guided_contrastive_weights(
    guide_similarity: torch.Tensor,
    own_column: torch.Tensor,
    positive_column: torch.Tensor,
    delta: float = 0.8,
    k_pos: int = 5,
    attraction_weights: bool = True,
    repulsion_weights: bool = True,
    candidate_density: torch.Tensor | None = None,
    bank_columns: int = 0,
) -> GuidedWeights:
    """P(i), N(i), w+ and w- of L_GCL from the guide similarities S_f (2B, 2G + M).

    The last `bank_columns` (M) columns are memory-bank views: they may be guided positives,
    never negatives. `candidate_density` (2G,) is rho of the batch's candidates
    (:func:`guide_density`): w- then also scales with 1 - rho.

    w+ of a guided positive is S_f clamped at 0: only a negative `delta` can select a
    guide-dissimilar view, and it then attracts with weight 0 (it still counts as a
    positive, weight 1, in the denominator). 1 - S_f is clamped at 0 against rounding
    above 1, and the mean over N(i) at 1e-8; an anchor without negatives gets no w-.
    """
    guided = guided_positive_selection(guide_similarity, own_column, positive_column, delta, k_pos)
    rows = torch.arange(guide_similarity.shape[0], device=guide_similarity.device)
    other_view = torch.zeros_like(guided)
    other_view[rows, positive_column] = True
    own = torch.zeros_like(guided)
    own[rows, own_column] = True
    positive = guided | other_view
    negative = ~(positive | own)
    if bank_columns:
        negative[:, guide_similarity.shape[1] - bank_columns :] = False

    if attraction_weights:
        attraction = torch.where(guided, guide_similarity.clamp(min=0.0), 0.0)
    else:
        attraction = guided.to(guide_similarity.dtype)
    attraction = torch.where(other_view, 1.0, attraction)

    negative_f = negative.to(guide_similarity.dtype)
    if repulsion_weights or candidate_density is not None:
        raw = (1.0 - guide_similarity).clamp(min=0.0) if repulsion_weights else 1.0
        if candidate_density is not None:
            sparsity = (1.0 - candidate_density.to(guide_similarity.dtype)).clamp(min=0.0)
            sparsity = F.pad(sparsity, (0, bank_columns), value=1.0)  # bank: never negatives
            raw = raw * sparsity[None, :]
        dissimilarity = raw * negative_f
        count = negative_f.sum(dim=1, keepdim=True).clamp(min=1.0)
        mean = (dissimilarity.sum(dim=1, keepdim=True) / count).clamp(min=_REPULSION_EPS)
        repulsion = dissimilarity / mean
    else:
        repulsion = negative_f
    return GuidedWeights(guide_similarity, guided, positive, negative, attraction, repulsion)


def guided_contrastive_loss(
    u1: torch.Tensor,
    u2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    temperature: float = 0.2,
    delta: float = 0.8,
    k_pos: int = 5,
    attraction_weights: bool = True,
    repulsion_weights: bool = True,
    gather: bool = True,
    return_stats: bool = False,
    labels: torch.Tensor | None = None,
    density_k: int = 0,
    bank: BankView | None = None,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_GCL of the student views `u1`, `u2` (B, D) guided by `v1`, `v2` (B, D').

    The guide decides who is a positive and how hard each pair is pulled or pushed; only
    the student's similarities carry gradient (v is detached). `delta > 1` or `k_pos = 0`
    with ``repulsion_weights=False`` is NT-Xent. With `gather=True` and a process group,
    candidates come from every process.

    ``return_stats=True`` also returns detached local diagnostics (no host sync):
    ``guided_positives_per_anchor`` (mean |G(i)|) and ``anchors_with_guided_positives``
    (share of anchors with |G(i)| > 0); with the images' true `labels` (B,) (an analysis, never
    part of the loss) also ``guided_positive_precision`` (share of guided pairs of the same
    class; NaN without guided pairs) and ``same_class_rate`` (the share among all candidate
    pairs: what random positives would reach).

    ``density_k > 0`` turns on density-aware repulsion; a non-empty `bank` adds its views as
    candidate guided positives (the module docstring).
    """
    check_temperature(temperature)
    check_guided_selection(delta, k_pos)
    check_density_k(density_k)
    # Every check runs before the first collective, so a bad call fails on every rank.
    _check_guide(u1, u2, v1, v2)
    layout = two_view_layout(u1, u2, gather)
    v_anchors, v_candidates = _guide_views(v1, v2, gather)
    guide_similarity = v_anchors @ v_candidates.T
    logits = layout.anchors @ layout.candidates.T / temperature
    bank_columns = 0 if bank is None else bank.guide.shape[0]
    if bank_columns:
        bank_guide = bank.guide.to(v_anchors.dtype)
        guide_similarity = torch.cat([guide_similarity, v_anchors @ bank_guide.T], dim=1)
        bank_student = bank.student.to(layout.anchors.dtype)
        logits = torch.cat([logits, layout.anchors @ bank_student.T / temperature], dim=1)
    density = guide_density(v_candidates, density_k) if density_k else None
    weights = guided_contrastive_weights(
        guide_similarity,
        layout.own_column,
        layout.positive_column,
        delta,
        k_pos,
        attraction_weights,
        repulsion_weights,
        candidate_density=density,
        bank_columns=bank_columns,
    )
    dtype = logits.dtype
    # Denominator weights in log space: 0 for P(i), log w- for N(i), -inf for the own column
    # (and for a w- of 0), so that logsumexp gives the weighted denominator stably.
    log_weights = torch.where(
        weights.positive,
        0.0,
        torch.where(weights.negative, weights.repulsion.to(dtype).log(), float("-inf")),
    ).to(dtype)
    log_denominator = torch.logsumexp(logits + log_weights, dim=1, keepdim=True)
    attraction = weights.attraction.to(dtype)
    log_prob = logits - log_denominator  # finite everywhere: no 0 * -inf below
    per_anchor = -(attraction * log_prob).sum(dim=1) / attraction.sum(dim=1)
    loss = per_anchor.mean()
    if not return_stats:
        return loss
    counts = weights.guided.sum(dim=1).to(dtype)
    stats = {
        "guided_positives_per_anchor": counts.mean(),
        "anchors_with_guided_positives": (counts > 0).to(dtype).mean(),
    }
    if labels is not None:
        candidate_labels = layout.gather_labels(labels)
        if bank_columns:
            candidate_labels = torch.cat([candidate_labels, bank.labels.to(labels.device)])
        same = labels.repeat(2)[:, None] == candidate_labels[None, :]
        candidates = weights.positive | weights.negative
        guided_pairs = weights.guided.sum()
        stats["guided_positive_precision"] = torch.where(
            guided_pairs > 0,
            (weights.guided & same).sum() / guided_pairs.clamp(min=1),
            torch.tensor(float("nan"), device=same.device),
        ).to(dtype)
        stats["same_class_rate"] = ((candidates & same).sum() / candidates.sum()).to(dtype)
    return loss, stats


def _without_own_column(similarity: torch.Tensor, own_column: torch.Tensor) -> torch.Tensor:
    """(2B, 2G) -> (2B, 2G - 1): drop each row's own column, keep the others in order."""
    rows, columns = similarity.shape
    keep = torch.ones((rows, columns), dtype=torch.bool, device=similarity.device)
    keep[torch.arange(rows, device=similarity.device), own_column] = False
    return similarity[keep].reshape(rows, columns - 1)


def relational_distillation_loss(
    u1: torch.Tensor,
    u2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    teacher_temperature: float = 0.2,
    student_temperature: float = 0.2,
    gather: bool = True,
) -> torch.Tensor:
    """Relational L_DL: each anchor's similarity distribution over the batch follows the guide's.

    mean_i KL(softmax(S_f[i, j != i] / tau_t) || softmax(S_g[i, j != i] / tau_s)) over the
    2G - 1 gathered views other than the anchor. It transfers the guide's neighbourhoods
    rather than its coordinates, so D and D' may differ. The teacher side has no gradient.
    """
    check_temperature(teacher_temperature, "teacher_temperature")
    check_temperature(student_temperature, "student_temperature")
    _check_guide(u1, u2, v1, v2)
    layout = two_view_layout(u1, u2, gather)
    v_anchors, v_candidates = _guide_views(v1, v2, gather)
    student = _without_own_column(layout.anchors @ layout.candidates.T, layout.own_column)
    with torch.no_grad():
        teacher = _without_own_column(v_anchors @ v_candidates.T, layout.own_column)
        log_p = torch.log_softmax(teacher / teacher_temperature, dim=1).to(student.dtype)
    log_q = torch.log_softmax(student / student_temperature, dim=1)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)


def _check_feature_dims(
    u1: torch.Tensor, u2: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor
) -> None:
    _check_guide(u1, u2, v1, v2)
    if u1.shape[1] != v1.shape[1]:
        raise ConfigError(
            f"feature distillation needs the same embedding dimension, got student D={u1.shape[1]} "
            f"and guide D'={v1.shape[1]}; use mode='relational', which allows different dimensions"
        )


def feature_distillation_loss(
    u1: torch.Tensor, u2: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor
) -> torch.Tensor:
    """Feature L_DL: mean over the 2B local views of 1 - <u_i, v_i>, pulling u onto the guide's v.

    Needs D == D' (the guide's own projector output); purely local, nothing is gathered.
    """
    _check_feature_dims(u1, u2, v1, v2)
    u = F.normalize(torch.cat([u1, u2]), dim=1)
    v = F.normalize(torch.cat([v1, v2]).detach().to(u.dtype), dim=1)
    return (1.0 - (u * v).sum(dim=1)).mean()


def distillation_loss(
    u1: torch.Tensor,
    u2: torch.Tensor,
    v1: torch.Tensor,
    v2: torch.Tensor,
    mode: str = "relational",
    teacher_temperature: float = 0.2,
    student_temperature: float = 0.2,
    gather: bool = True,
) -> torch.Tensor:
    """L_DL in one of docs/method.md's forms: "relational" (default), "feature" or "both" (their sum)."""
    if mode not in DISTILLATION_MODES:
        raise ConfigError(
            f"unknown distillation mode {mode!r}; valid modes: {', '.join(DISTILLATION_MODES)}"
        )
    if mode in ("feature", "both"):
        # Before the relational term's gather, so that a bad call fails on every rank.
        _check_feature_dims(u1, u2, v1, v2)
    total = None
    if mode in ("relational", "both"):
        total = relational_distillation_loss(
            u1, u2, v1, v2, teacher_temperature, student_temperature, gather
        )
    if mode in ("feature", "both"):
        feature = feature_distillation_loss(u1, u2, v1, v2)
        total = feature if total is None else total + feature
    return total
