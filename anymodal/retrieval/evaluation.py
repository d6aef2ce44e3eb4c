"""Evaluation of a trained model on a manifest: any-to-any retrieval and zero-shot.

**Retrieval tasks** are written ``audio->text`` or ``audio+video->text``. For a task, the
gallery is every distinct target item of the manifest (rows with the target), the queries
are the distinct query tuples of the rows that have every query modality and the target,
and a target is correct for a query when some row pairs them. So a manifest with several
captions per clip gives several correct captions per clip (``audio->text`` mAP counts
them all), and ``text->audio`` one clip per caption. ``positives="label"`` instead counts
every target of the query's class as correct. Items are identified by their source (the
path or the inline value): a clip listed on several rows is embedded once.

**Zero-shot classification** scores items against one embedding per class, either the
class names put through a prompt template and embedded in a class modality (``text``),
or *labelled prototypes*: the normalised mean embedding of each class's items of one
modality. Each distinct item is classified once, with the label of its first row.
Ranking always uses the model's objective (``model.score``), and a query that lacks some
of the model's modalities is scored the way training scored such rows (the learned missing
embeddings of the absent modalities are passed to the objective's ``score``).

The same code evaluates embeddings already in memory (:class:`EmbeddedRows`): training's
validation uses it, so that the numbers printed during training are the numbers ``anymodal
eval`` gives afterwards on the same rows. Every result carries ``chance_R@1`` and the
positives rule it used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from anymodal.errors import ConfigError, DataError
from anymodal.retrieval.metrics import (
    average_precision,
    first_positive_rank,
    summarize,
    zero_shot_accuracy,
)

if TYPE_CHECKING:
    from anymodal.model import MultiModalModel

__all__ = ["EmbeddedManifest", "EmbeddedRows", "Task", "default_tasks", "evaluate_retrieval",
           "parse_tasks", "read_classes", "task_scores", "zero_shot"]


@dataclass(frozen=True)
class Task:
    """A retrieval task: the query modalities and the target modality."""

    query: tuple[str, ...]
    target: str

    @property
    def name(self) -> str:
        """The task as written: ``a->b`` or ``a+b->c``."""
        return f"{'+'.join(self.query)}->{self.target}"


def parse_tasks(spec: str | Iterable[str], modalities: Iterable[str]) -> list[Task]:
    """``"audio->text,audio+video->text"`` (or a list of such strings) to tasks.

    Raises:
        ConfigError: a malformed task, or a modality the model does not have.
    """
    known = sorted(modalities)
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    tasks = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        left, arrow, target = part.partition("->")
        query = tuple(q.strip() for q in left.split("+"))
        target = target.strip()
        if not arrow or not target or not all(query) or len(set(query)) != len(query):
            raise ConfigError(f"task {part!r} must look like 'a->b' or 'a+b->c'")
        unknown = [m for m in (*query, target) if m not in known]
        if unknown:
            raise ConfigError(f"task {part!r}: modalities {unknown} are not in the model "
                              f"({known})")
        tasks.append(Task(query, target))
    if not tasks:
        raise ConfigError(f"no retrieval task in {spec!r}")
    return tasks


def default_tasks(modalities: Iterable[str]) -> list[Task]:
    """Every ordered single-modality pair, plus all-others -> each.

    With two modalities all-others -> each is a pair already, so only pairs come back.

    Args:
        modalities: the model's modality keys, in order.
    """
    names = list(modalities)
    tasks = [Task((a,), b) for a in names for b in names if a != b]
    if len(names) > 2:
        tasks += [Task(tuple(m for m in names if m != target), target) for target in names]
    return tasks


def _key(value: Any) -> str:
    """A hashable identity of a source value (inline lists are JSON-encoded).

    Training's validation identifies items by the same rule
    (:func:`anymodal.data.rows.source_key`).
    """
    from anymodal.data.rows import source_key

    return source_key(value)


class EmbeddedRows:
    """Rows whose items are already embedded: what :func:`evaluate_retrieval` reads.

    A row is ``{modality: item key, ..., label_key: label}``; ``embedded(m)`` maps each
    item key of modality ``m`` to its embedding. Rows that share an item key share the item
    (several captions of one clip, one caption repeated on many rows), exactly as
    :class:`EmbeddedManifest` identifies items by their source.

    Args:
        embeddings: modality -> ``[N, D]``, row ``i`` of every modality from row ``i``.
        present: modality -> ``BoolTensor[N]``: the rows that have the modality.
        labels: ``[N]`` class labels (negative: unknown), or ``None``.
        keys: modality -> ``N`` item keys (default: the row number, every item distinct).
        name: how errors name the rows (e.g. ``validation data``).
    """

    label_key = "label"

    def __init__(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor],
                 labels: Tensor | None = None, keys: Mapping[str, Sequence[str]] | None = None,
                 name: str = "the rows") -> None:
        self.path = name
        self._embedded: dict[str, dict[str, Tensor]] = {}
        n = len(next(iter(embeddings.values())))
        self.rows: list[dict[str, Any]] = [{} for _ in range(n)]
        for m, x in embeddings.items():
            mask = present[m].bool().tolist()
            names = list(keys[m]) if keys is not None and m in keys else \
                [str(i) for i in range(n)]
            self._embedded[m] = {}
            for i, (has, key) in enumerate(zip(mask, names)):
                if has:
                    self.rows[i][m] = key
                    self._embedded[m].setdefault(key, x[i])
        if labels is not None:
            for row, label in zip(self.rows, labels.tolist()):
                row[self.label_key] = None if label < 0 else int(label)

    def columns(self) -> set[str]:
        """The modalities some row has."""
        return set(self._embedded)

    def embedded(self, modality: str) -> dict[str, Tensor]:
        """Item key -> embedding ``[D]`` of every distinct item of ``modality``."""
        return self._embedded.get(modality, {})

    def label(self, row: Mapping[str, Any]) -> Any:
        """A row's class label (``None`` when unknown)."""
        return row.get(self.label_key)


class EmbeddedManifest:
    """A manifest's rows with each modality embedded once per distinct source.

    Args:
        model: the model.
        path: the manifest (``.jsonl`` or ``.csv``; paths relative to it).
        batch_size: items embedded at once.
        on_error: ``skip`` (an item that fails is treated as missing and reported in
            ``failures``) or ``raise``.
        label_key: the column of class labels.
    """

    def __init__(self, model: MultiModalModel, path: str | Path, batch_size: int = 64,
                 on_error: str = "skip", label_key: str = "label",
                 progress: bool = False) -> None:
        from anymodal.data.manifest import read_manifest_rows

        self.model = model
        self.path = Path(path)
        self.rows = read_manifest_rows(self.path)
        self.batch_size = batch_size
        self.on_error = on_error
        self.label_key = label_key
        self.progress = progress
        self.failures: list[dict[str, Any]] = []
        self._cache: dict[str, dict[str, Tensor]] = {}

    def columns(self) -> set[str]:
        """The manifest's columns."""
        return set().union(*(row.keys() for row in self.rows))

    def embedded(self, modality: str) -> dict[str, Tensor]:
        """Source key -> embedding ``[D]`` for every distinct item of ``modality``."""
        if modality in self._cache:
            return self._cache[modality]
        from anymodal.data.rows import resolve_source
        from anymodal.data.sources import path_rule
        from anymodal.model.embed import embed_items

        rule = path_rule(self.model.modalities[modality].load)  # text stays text
        keys: dict[str, Any] = {}
        for row in self.rows:
            value = row.get(modality)
            if value is None or _key(value) in keys:
                continue
            try:
                keys[_key(value)] = resolve_source(value, self.path.parent, is_path=rule)
            except DataError as exc:  # a path outside the manifest's folder
                if self.on_error == "raise":
                    raise DataError(self.path, f"modality {modality!r}: {exc}") from None
                self.failures.append({"modality": modality, "source": _key(value),
                                      "reason": str(exc)})
        failed: list[tuple[int, str]] = []
        names = list(keys)
        try:
            vectors = embed_items(self.model, modality, list(keys.values()), self.batch_size,
                                  self.progress, self.on_error, failed)
        except DataError as exc:
            raise DataError(self.path, f"modality {modality!r}: {exc}") from None
        bad = {i for i, _ in failed}
        for i, reason in failed:
            self.failures.append({"modality": modality, "source": names[i], "reason": reason})
        kept = [name for i, name in enumerate(names) if i not in bad]
        self._cache[modality] = dict(zip(kept, vectors.unbind(0)))
        return self._cache[modality]

    def label(self, row: Mapping[str, Any]) -> Any:
        """A row's value in the label column (``None`` when absent)."""
        return row.get(self.label_key)


def _retrieval_sets(data: EmbeddedManifest | EmbeddedRows, task: Task, positives: str
                    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """The query embeddings, gallery embeddings and positives of a task.

    Shapes:
        returns ``{m: [Q, D]}``, ``[C, D]`` and ``BoolTensor[Q, C]``.
    """
    query_emb = {m: data.embedded(m) for m in task.query}
    target_emb = data.embedded(task.target)
    gallery: dict[str, int] = {}
    gallery_labels: list[Any] = []
    queries: dict[tuple[str, ...], int] = {}
    query_labels: list[Any] = []
    pairs: list[tuple[int, int]] = []
    for row in data.rows:
        value = row.get(task.target)
        if value is None or _key(value) not in target_emb:
            continue
        t = gallery.setdefault(_key(value), len(gallery))
        if t == len(gallery_labels):
            gallery_labels.append(data.label(row))
        sources = [row.get(m) for m in task.query]
        if any(s is None or _key(s) not in query_emb[m] for s, m in zip(sources, task.query)):
            continue
        q = queries.setdefault(tuple(_key(s) for s in sources), len(queries))
        if q == len(query_labels):
            query_labels.append(data.label(row))
        pairs.append((q, t))
    if not queries:
        raise DataError(data.path, f"task {task.name}: no row has every modality of "
                        f"{[*task.query, task.target]} (after skipping bad items)")
    if positives == "label":
        if any(label is None for label in (*query_labels, *gallery_labels)):
            raise DataError(data.path, f"task {task.name}: positives='label' needs a "
                            f"{data.label_key!r} on every row")
        codes: dict[str, int] = {}
        q_codes = torch.tensor([codes.setdefault(str(x), len(codes)) for x in query_labels])
        g_codes = torch.tensor([codes.setdefault(str(x), len(codes)) for x in gallery_labels])
        pos = q_codes[:, None] == g_codes[None, :]
    else:
        pos = torch.zeros(len(queries), len(gallery), dtype=torch.bool)
        for q, t in pairs:
            pos[q, t] = True
    q_emb = {m: torch.stack([query_emb[m][key[i]] for key in queries])
             for i, m in enumerate(task.query)}
    gallery_emb = torch.stack([target_emb[key] for key in gallery])
    return q_emb, gallery_emb, pos


def task_scores(model: MultiModalModel, query: Mapping[str, Tensor], candidates: Tensor,
                target: str) -> Tensor:
    """The objective's scores of ``candidates`` (modality ``target``) for ``query``.

    The modalities in neither get the model's learned missing embeddings, as rows without
    them had in training (:meth:`MultiModalModel.score`).

    Args:
        model: the model.
        query: the query embeddings.
        candidates: the gallery embeddings.
        target: the gallery's modality.

    Shapes:
        query ``{m: [Q, D]}``, candidates ``[C, D]``; returns ``[Q, C]``.
    """
    return model.score(dict(query), candidates, target=target)


@torch.no_grad()
def evaluate_retrieval(model: MultiModalModel, data: EmbeddedManifest | EmbeddedRows | str | Path,
                       tasks: Sequence[Task] | str | None = None, ks: Sequence[int] = (1, 5, 10),
                       positives: str = "source", block: int = 1024) -> dict[str, dict[str, float]]:
    """R@k, median rank, MRR and mAP for each task (see the module doc).

    Args:
        model: the model (its objective's score ranks).
        data: the manifest, an :class:`EmbeddedManifest` shared with other calls, or
            :class:`EmbeddedRows` already embedded.
        tasks: tasks or their string form (``None``: :func:`default_tasks` of the model's
            modalities that the data has).
        ks: the cut-offs of R@k.
        positives: ``source`` (targets paired with the query on some row) or ``label``.
        block: queries scored at once (memory ``block x gallery``).

    Returns:
        task name -> ``{"R@1": ..., "median_rank": ..., "MRR": ..., "mAP": ...,
        "queries": ..., "candidates": ..., "chance_R@1": ...}``.
    """
    if positives not in ("source", "label"):
        raise ConfigError(f"positives must be 'source' or 'label', got {positives!r}")
    if not isinstance(data, (EmbeddedManifest, EmbeddedRows)):
        data = EmbeddedManifest(model, data)
    if tasks is None:
        tasks = default_tasks([m for m in model.modalities if m in data.columns()])
    elif isinstance(tasks, str):
        tasks = parse_tasks(tasks, model.modalities)
    results: dict[str, dict[str, float]] = {}
    for task in tasks:
        results[task.name] = _evaluate_task(model, data, task, ks, positives, block)
    return results


def _evaluate_task(model: MultiModalModel, data: EmbeddedManifest | EmbeddedRows, task: Task,
                   ks: Sequence[int], positives: str, block: int) -> dict[str, float]:
    device = model.device
    queries, gallery, pos = _retrieval_sets(data, task, positives)
    gallery = gallery.to(device)
    ranks, precisions = [], []
    for start in range(0, pos.shape[0], block):
        part = {m: q[start:start + block].to(device) for m, q in queries.items()}
        scores = task_scores(model, part, gallery, task.target).float().cpu()
        ranks.append(first_positive_rank(scores, pos[start:start + block]))
        precisions.append(average_precision(scores, pos[start:start + block]))
    metrics = summarize(torch.cat(ranks), torch.cat(precisions), ks)
    metrics["candidates"] = float(pos.shape[1])
    # A random ranking puts a correct target first with probability positives / gallery.
    metrics["chance_R@1"] = float(pos.float().mean(dim=1).mean())
    return metrics


def read_classes(path: str | Path) -> list[str]:
    """Class names, one per line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "classes file not found")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if len(names) < 2:
        raise DataError(path, "needs at least two class names, one per line")
    return names


def _label_index(label: Any, classes: Sequence[str], by_name: bool = False) -> int | None:
    """A row's label as a class position: an integer, or a class name.

    With ``by_name``, only the label's string form counts, as prototype classes are named.
    """
    if label is None:
        return None
    if by_name or (isinstance(label, str) and label in classes):
        return classes.index(str(label)) if str(label) in classes else None
    try:
        value = int(label)
    except (TypeError, ValueError):
        return None
    return value if 0 <= value < len(classes) else None


def _label_order(label: str) -> tuple[bool, int, str]:
    """Integer labels first, in numeric order, then the others alphabetically."""
    numeric = label.lstrip("-").isdigit()
    return (not numeric, int(label) if numeric else 0, label)


def _class_embeddings(model: MultiModalModel, data: EmbeddedManifest,
                      classes: Sequence[str] | None, template: str, class_modality: str | None,
                      prototypes: str | None, prototype_data: EmbeddedManifest | None
                      ) -> tuple[list[str], Tensor, str]:
    """``(class names, [K, D] class embeddings, the modality they stand for)``."""
    if prototypes is not None:
        source = prototype_data or data
        embedded = source.embedded(prototypes)
        groups: dict[str, list[Tensor]] = {}
        for row in source.rows:
            value, label = row.get(prototypes), source.label(row)
            if value is not None and label is not None and _key(value) in embedded:
                groups.setdefault(str(label), []).append(embedded[_key(value)])
        if len(groups) < 2:
            raise DataError(source.path, f"prototypes need labelled {prototypes!r} items of "
                            "at least two classes")
        names = sorted(groups, key=_label_order)
        means = torch.stack([torch.stack(groups[n]).mean(0) for n in names])
        return names, torch.nn.functional.normalize(means, dim=-1), prototypes
    if classes is None:
        raise ConfigError("zero-shot needs classes (with a template) or a prototype modality")
    modality = class_modality or ("text" if "text" in model.modalities else None)
    if modality is None or modality not in model.modalities:
        raise ConfigError(f"zero-shot class modality {modality!r} is not in the model "
                          f"({sorted(model.modalities)}); pass --class-modality")
    if "{}" not in template:
        raise ConfigError(f"the prompt template {template!r} must contain '{{}}'")
    prompts = [template.replace("{}", name) for name in classes]
    return list(classes), model.embed(modality, prompts, progress=False), modality


@torch.no_grad()
def zero_shot(model: MultiModalModel, data: EmbeddedManifest | str | Path, *,
              classes: Sequence[str] | None = None, template: str = "{}",
              class_modality: str | None = None, prototypes: str | None = None,
              prototype_data: EmbeddedManifest | str | Path | None = None,
              modalities: Sequence[str] | None = None, ks: Sequence[int] = (1, 5)
              ) -> dict[str, dict[str, float]]:
    """Top-k accuracy of classifying each modality's labelled items (see the module doc).

    Args:
        model: the model.
        data: the labelled items (a manifest or an :class:`EmbeddedManifest`).
        classes: class names; row labels are their positions or the names themselves.
        template: the prompt, ``{}`` standing for the class name.
        class_modality: the modality prompts are embedded in (default ``text``).
        prototypes: instead of names, a modality whose labelled items' mean embedding per
            class is that class's embedding (labels then match by their string form).
        prototype_data: the manifest the prototypes come from (default ``data``).
        modalities: the modalities to classify (default: every model modality in the
            manifest other than the class modality).
        ks: the k of top-k accuracy.

    Returns:
        modality -> ``{"top1": ..., "top5": ..., "items": ..., "classes": ...}``.
    """
    if not isinstance(data, EmbeddedManifest):
        data = EmbeddedManifest(model, data)
    if prototype_data is not None and not isinstance(prototype_data, EmbeddedManifest):
        prototype_data = EmbeddedManifest(model, prototype_data)
    names, class_emb, class_mod = _class_embeddings(model, data, classes, template,
                                                    class_modality, prototypes, prototype_data)
    if modalities is None:
        modalities = [m for m in model.modalities if m in data.columns() and m != class_mod]
    results: dict[str, dict[str, float]] = {}
    for m in modalities:
        if m not in model.modalities:
            raise ConfigError(f"zero-shot modality {m!r} is not in the model")
        embedded = data.embedded(m)
        seen: set[str] = set()  # an item listed on several rows is classified once
        rows, labels = [], []
        for row in data.rows:
            value = row.get(m)
            label = _label_index(data.label(row), names, by_name=prototypes is not None)
            if value is None or label is None or _key(value) not in embedded \
                    or _key(value) in seen:
                continue
            seen.add(_key(value))
            rows.append(embedded[_key(value)])
            labels.append(label)
        if not rows:
            continue
        x = torch.stack(rows).to(model.device)
        scores = model.score({m: x}, class_emb.to(model.device), target=class_mod).float().cpu()
        accuracy = zero_shot_accuracy(scores, torch.tensor(labels), ks)
        results[m] = {**{f"top{k}": v for k, v in accuracy.items()},
                      "items": float(len(rows)), "classes": float(len(names))}
    if not results:
        raise DataError(data.path, "zero-shot: no labelled item to classify in "
                        f"{list(modalities)} (labels in column {data.label_key!r})")
    return results
