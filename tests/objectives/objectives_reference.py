"""Straightforward references of every objective, written from the definitions.

Loops over rows and tuples, explicit exponentials and ``torch.det``: slow, but each line
reads like the formula in the objectives issue. Meant for float64 and small N.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

Emb = dict[str, Tensor]
Present = dict[str, Tensor] | None


def _keep(emb: Emb, present: Present, names: list[str]) -> Tensor:
    n = next(iter(emb.values())).shape[0]
    keep = torch.ones(n, dtype=torch.bool)
    for name in names:
        if present is not None and name in present:
            keep = keep & present[name]
    return keep


def _ce(logits: Tensor, target: int, smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of one row of logits, with label smoothing, written out."""
    log_p = logits - torch.log(torch.exp(logits - logits.max()).sum()) - logits.max()
    return -(1 - smoothing) * log_p[target] - smoothing * log_p.mean()


def all_pairs(names: list[str]) -> list[tuple[str, str]]:
    return list(itertools.combinations(names, 2))


def _pairwise(emb: Emb, present: Present, pairs, reduction: str, pair_loss) -> Tensor:
    losses = []
    for a, b in pairs:
        keep = _keep(emb, present, [a, b])
        x, y = emb[a][keep], emb[b][keep]
        if x.shape[0] < 2:
            continue
        losses.append(pair_loss(x, y))
    if not losses:
        return next(iter(emb.values())).sum() * 0.0
    total = sum(losses)
    return total / len(losses) if reduction == "mean" else total


def clip(emb: Emb, s: Tensor, present: Present, pairs, reduction: str = "mean") -> Tensor:
    def pair_loss(x: Tensor, y: Tensor) -> Tensor:
        n = x.shape[0]
        a_to_b = sum(_ce(s * (y @ x[i]), i) for i in range(n)) / n
        b_to_a = sum(_ce(s * (x @ y[i]), i) for i in range(n)) / n
        return (a_to_b + b_to_a) / 2

    return _pairwise(emb, present, pairs, reduction, pair_loss)


def clip_options(emb: Emb, s: Tensor, present: Present, pairs, smoothing: float = 0.0,
                 beta: float = 0.0, alpha: float = 0.0, scales: dict | None = None) -> Tensor:
    """CLIP with label smoothing, per-pair scales, HCL's importance-weighted negatives
    (weights e^{β ℓ} / mean e^{β ℓ}) and LLaVE's boost e^{α·sg(cos)}, written as weights."""

    def direction(x: Tensor, y: Tensor, scale: Tensor) -> Tensor:
        n = x.shape[0]
        total = 0.0
        for i in range(n):
            logits = [scale * (x[i] @ y[j]) for j in range(n)]
            imp = [torch.exp(beta * logits[j]) for j in range(n) if j != i]
            mean_imp = sum(imp) / len(imp)
            terms = []
            for j in range(n):
                weight = torch.ones((), dtype=torch.float64)
                if j != i:
                    weight = torch.exp(beta * logits[j]) / mean_imp
                    weight = weight * torch.exp(alpha * (x[i] @ y[j]).detach())
                terms.append(torch.log(weight) + logits[j])
            total = total + _ce(torch.stack(terms), i, smoothing)
        return total / n

    def pair(a: str, b: str):
        key = "|".join(sorted((a, b)))
        scale = s if not scales or key not in scales else scales[key]
        return lambda x, y: (direction(x, y, scale) + direction(y, x, scale)) / 2

    losses = []
    for a, b in pairs:
        keep = _keep(emb, present, [a, b])
        x, y = emb[a][keep], emb[b][keep]
        if x.shape[0] >= 2:
            losses.append(pair(a, b)(x, y))
    return sum(losses) / len(losses)


def siglip(emb: Emb, s: Tensor, bias: Tensor, present: Present, pairs, reduction="mean",
           smoothing: float = 0.0) -> Tensor:
    def pair_loss(x: Tensor, y: Tensor) -> Tensor:
        n = x.shape[0]
        total = 0.0
        for i in range(n):
            for j in range(n):
                y_ij = 1.0 - smoothing / 2 if i == j else smoothing / 2
                p = torch.sigmoid(s * (x[i] @ y[j]) + bias)
                total = total - y_ij * torch.log(p) - (1 - y_ij) * torch.log(1 - p)
        return total / n

    return _pairwise(emb, present, pairs, reduction, pair_loss)


def _loo_lse(values: list[Tensor], skip: int) -> Tensor:
    """log Σ_{j ≠ skip} e^{values[j]}, written out."""
    kept = torch.stack([v for j, v in enumerate(values) if j != skip])
    top = kept.max()
    return top + torch.log(torch.exp(kept - top).sum())


def dcl(emb: Emb, s: Tensor, present: Present, pairs, reduction: str = "mean",
        weighted: bool = False, sigma: float = 0.5, intra: bool = False) -> Tensor:
    """DCL / DCLW from Yeh et al. eq. 6, one pair at a time, both directions averaged."""

    def direction(x: Tensor, y: Tensor) -> Tensor:
        n = x.shape[0]
        aligned = torch.stack([x[i] @ y[i] for i in range(n)]).detach() / sigma
        w = 2 - n * torch.softmax(aligned, dim=0) if weighted else torch.ones(n)
        total = 0.0
        for i in range(n):
            total = total - w[i] * s * (x[i] @ y[i])
            total = total + _loo_lse([s * (x[i] @ y[j]) for j in range(n)], i)
            if intra:
                total = total + _loo_lse([s * (x[i] @ x[j]) for j in range(n)], i)
        return total / n

    return _pairwise(emb, present, pairs, reduction,
                     lambda x, y: (direction(x, y) + direction(y, x)) / 2)


def _hopfield(state: Tensor, stored: Tensor, beta: float) -> Tensor:
    rows = []
    for q in state:
        weights = torch.softmax(torch.stack([beta * (q @ k) for k in stored]), dim=0)
        v = sum(w * k for w, k in zip(weights, stored))
        rows.append(v / v.norm())
    return torch.stack(rows)


def infoloob(emb: Emb, s: Tensor, present: Present, pairs, reduction: str = "mean",
             beta: float | None = None) -> Tensor:
    """τ · (LOOB(a→b) + LOOB(b→a)) per pair; with β, on Hopfield retrievals (CLOOB)."""

    def loob(x: Tensor, y: Tensor) -> Tensor:
        n = x.shape[0]
        total = 0.0
        for i in range(n):
            logits = [s * (x[i] @ y[j]) for j in range(n)]
            total = total - logits[i] + _loo_lse(logits, i)
        return total / n

    def pair(x: Tensor, y: Tensor) -> Tensor:
        if beta is None:
            return (loob(x, y) + loob(y, x)) / s
        forward = loob(_hopfield(x, x, beta), _hopfield(y, x, beta))
        backward = loob(_hopfield(y, y, beta), _hopfield(x, y, beta))
        return (forward + backward) / s

    return _pairwise(emb, present, pairs, reduction, pair)


def mip(vectors: list[Tensor]) -> Tensor:
    product = vectors[0]
    for v in vectors[1:]:
        product = product * v
    return product.sum()


def symile_n_squared(emb: Emb, s: Tensor, keep: Tensor | None = None) -> Tensor:
    names = list(emb)
    if keep is not None:
        emb = {m: x[keep] for m, x in emb.items()}
    n = emb[names[0]].shape[0]
    losses = []
    for a in names:
        others = [m for m in names if m != a]
        total = 0.0
        for i in range(n):
            logits, target = [], None
            for t, combo in enumerate(itertools.product(range(n), repeat=len(others))):
                vectors = [emb[a][i]] + [emb[m][j] for m, j in zip(others, combo)]
                logits.append(s * mip(vectors))
                if all(j == i for j in combo):
                    target = t
            total = total + _ce(torch.stack(logits), target)
        losses.append(total / n)
    return sum(losses) / len(losses)


def symile_n(emb: Emb, s: Tensor, seed: int, keep: Tensor | None = None) -> Tensor:
    """The O(N) variant with the permutations drawn as documented: per anchor, per other."""
    names = list(emb)
    if keep is not None:
        emb = {m: x[keep] for m, x in emb.items()}
    n = emb[names[0]].shape[0]
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for a in names:
        others = [m for m in names if m != a]
        perms = {m: torch.randperm(n, generator=generator) for m in others}
        total = 0.0
        for i in range(n):
            logits = []
            for j in range(n):
                rows = [i] * len(others) if j == i else [int(perms[m][j]) for m in others]
                vectors = [emb[a][i]] + [emb[m][r] for m, r in zip(others, rows)]
                logits.append(s * mip(vectors))
            total = total + _ce(torch.stack(logits), i)
        losses.append(total / n)
    return sum(losses) / len(losses)


def symile_subsets(emb: Emb, s: Tensor, present: Present, negatives: str = "n_squared",
                   seed: int = 0) -> Tensor:
    """Symile on rows with hidden members, written out row by row.

    A row with members S (hidden H) is contrasted, for each anchor a in S, with the
    candidate tuples of S minus a taken from the rows that have all of S; the row's own H
    embeddings weigh the positive and every candidate. Patterns in sorted order, anchors
    and others in batch order (the ``"n"`` permutations are drawn in that order). The
    loss is the mean over (row, anchor).
    """
    names = list(emb)
    n = emb[names[0]].shape[0]
    pattern_of = [tuple(bool(present[m][i]) for m in names) for i in range(n)]
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for pattern in sorted(set(pattern_of)):
        have = [m for m, p in zip(names, pattern) if p]
        hidden = [m for m in names if m not in have]
        group = [i for i in range(n) if pattern_of[i] == pattern]
        cands = [j for j in range(n) if all(bool(present[m][j]) for m in have)]
        if len(have) < 2 or len(cands) < 2:
            continue
        for a in have:
            others = [m for m in have if m != a]
            perms = {m: torch.randperm(len(cands), generator=generator) for m in others} \
                if negatives == "n" else {}
            for i in group:
                t = cands.index(i)
                fixed = [emb[a][i]] + [emb[h][i] for h in hidden]
                if negatives == "n":
                    combos = [[t] * len(others) if j == t else [int(perms[m][j]) for m in others]
                              for j in range(len(cands))]
                else:
                    combos = [list(c) for c in itertools.product(range(len(cands)),
                                                                 repeat=len(others))]
                logits = [s * mip(fixed + [emb[m][cands[j]] for m, j in zip(others, combo)])
                          for combo in combos]
                target = combos.index([t] * len(others))
                total = total + _ce(torch.stack(logits), target)
                count += 1
    return total / count


def volume(vectors: list[Tensor]) -> Tensor:
    k = len(vectors)
    gram = torch.stack([torch.stack([vectors[p] @ vectors[q] for q in range(k)]) for p in range(k)])
    return torch.sqrt(torch.abs(torch.det(gram)))


def gram(
    emb: Emb, s: Tensor, anchor: str | None = None, smoothing: float = 0.1,
    keep: Tensor | None = None,
) -> Tensor:
    names = list(emb)
    a = anchor or names[0]
    others = [m for m in names if m != a]
    if keep is not None:
        emb = {m: x[keep] for m, x in emb.items()}
    n = emb[a].shape[0]
    vol = torch.stack([
        torch.stack([volume([emb[a][i]] + [emb[m][j] for m in others]) for j in range(n)])
        for i in range(n)
    ])
    rows = sum(_ce(-s * vol[i], i, smoothing) for i in range(n)) / n
    cols = sum(_ce(-s * vol[:, j], j, smoothing) for j in range(n)) / n
    return (rows + cols) / 2


def gram_subsets(emb: Emb, s: Tensor, present: Present, anchor: str | None = None,
                 smoothing: float = 0.1) -> Tensor:
    """GRAM on the members each row has: row i's tuple is its present modalities (the
    anchor first when present, else its first present modality); it is contrasted, both
    ways, with every row j that has all of i's members, on the volume of those members."""
    names = list(emb)
    a = anchor or names[0]
    n = emb[a].shape[0]
    order = [a] + [m for m in sorted(names) if m != a]
    has = dict(zip(names, _has(emb, present)))
    forward, backward, count = 0.0, 0.0, 0
    for i in range(n):
        mine = [m for m in order if has[m][i]]
        if len(mine) < 2:
            continue
        head, rest = mine[0], [m for m in names if m in mine[1:]]
        cands = [j for j in range(n) if all(has[m][j] for m in mine)]
        target = cands.index(i)
        rows = torch.stack([volume([emb[head][i]] + [emb[m][j] for m in rest]) for j in cands])
        cols = torch.stack([volume([emb[head][j]] + [emb[m][i] for m in rest]) for j in cands])
        forward = forward + _ce(-s * rows, target, smoothing)
        backward = backward + _ce(-s * cols, target, smoothing)
        count += 1
    if count < 2:
        return s * 0.0
    return (forward / count + backward / count) / 2


def _has(emb: Emb, present: Present) -> list[Tensor]:
    n = next(iter(emb.values())).shape[0]
    return [present[m] if present is not None and m in present else torch.ones(n, dtype=torch.bool)
            for m in emb]


def _masked_views(emb: Emb, present: Present) -> tuple[list[Tensor], list[Tensor], list[int]]:
    """The views, each view's presence mask, and the rows that have at least two views."""
    u, has = list(emb.values()), _has(emb, present)
    rows = [i for i in range(u[0].shape[0]) if sum(bool(h[i]) for h in has) >= 2]
    return u, has, rows


def mv_infonce_masked(emb: Emb, s: Tensor, present: Present) -> Tensor:
    """MV-InfoNCE over the views each row has; rows with fewer than two views left out."""
    u, has, rows = _masked_views(emb, present)
    m = len(u)
    total = 0.0
    for i in rows:
        pos = sum(torch.exp(s * (u[v][i] @ u[k][i])) for v in range(m) for k in range(m)
                  if k != v and has[v][i] and has[k][i])
        neg = sum(torch.exp(s * (u[v][i] @ u[k][j])) for v in range(m) for k in range(m)
                  for j in rows if (j, k) != (i, v) and has[v][i] and has[k][j])
        total = total - torch.log(pos / neg)
    return total / len(rows)


def mv_dhel_masked(emb: Emb, s: Tensor, present: Present) -> Tensor:
    """MV-DHEL over the views each row has (a view's negatives: rows with that view)."""
    u, has, rows = _masked_views(emb, present)
    m = len(u)
    total = 0.0
    for i in rows:
        pos = sum(torch.exp(s * (u[v][i] @ u[k][i])) for v in range(m) for k in range(v + 1, m)
                  if has[v][i] and has[k][i])
        log_neg = 0.0
        for v in range(m):
            others = [j for j in rows if j != i and has[v][j]]
            if has[v][i] and others:
                log_neg = log_neg + torch.log(sum(torch.exp(s * (u[v][i] @ u[v][j]))
                                                  for j in others))
        total = total - torch.log(pos) + log_neg
    return total / len(rows)


def _views(emb: Emb, keep: Tensor | None) -> list[Tensor]:
    return [x[keep] if keep is not None else x for x in emb.values()]


def mv_infonce(emb: Emb, s: Tensor, keep: Tensor | None = None) -> Tensor:
    u = _views(emb, keep)
    m, n = len(u), u[0].shape[0]
    total = 0.0
    for i in range(n):
        pos = sum(torch.exp(s * (u[v][i] @ u[k][i])) for v in range(m) for k in range(m) if k != v)
        neg = sum(
            torch.exp(s * (u[v][i] @ u[k][j]))
            for v in range(m) for k in range(m) for j in range(n) if (j, k) != (i, v)
        )
        total = total - torch.log(pos / neg)
    return total / n


def mv_dhel(emb: Emb, s: Tensor, keep: Tensor | None = None) -> Tensor:
    u = _views(emb, keep)
    m, n = len(u), u[0].shape[0]
    total = 0.0
    for i in range(n):
        pos = sum(torch.exp(s * (u[v][i] @ u[k][i])) for v in range(m) for k in range(v + 1, m))
        neg = math.prod(
            sum(torch.exp(s * (u[v][i] @ u[v][j])) for j in range(n) if j != i) for v in range(m)
        )
        total = total - torch.log(pos / neg)
    return total / n


# ----------------------------------------------------------------------------- data


def embeddings(m: int, n: int, d: int, seed: int, dtype=torch.float64, grad=True) -> Emb:
    """``m`` modalities named ``m0..`` of ``n`` unit rows in ``d`` dims."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for k in range(m):
        x = torch.randn(n, d, generator=generator, dtype=torch.float64)
        x = (x / x.norm(dim=-1, keepdim=True)).to(dtype)
        out[f"m{k}"] = x.requires_grad_(grad)
    return out


def present_masks(
    names: list[str], n: int, seed: int, p_missing: float = 0.3, complete: int = 2
) -> dict[str, Tensor]:
    """Random presence masks; every row keeps at least one modality and the first
    ``complete`` rows have every modality (so that "drop" terms keep at least that many)."""
    generator = torch.Generator().manual_seed(seed + 1000)
    masks = torch.rand(n, len(names), generator=generator) >= p_missing
    masks[~masks.any(dim=1), 0] = True
    masks[:complete] = True
    return {name: masks[:, k].clone() for k, name in enumerate(names)}


def grads(loss: Tensor, inputs: list[Tensor]) -> list[Tensor]:
    return list(torch.autograd.grad(loss, inputs, allow_unused=False))
