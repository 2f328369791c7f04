"""The ETL step types of the example, found by dagflow's autodiscovery.

Each function gets ``(params, inputs, context)`` and returns a small JSON
summary: the rows themselves travel through the database (``StagedRow``,
keyed by the run id), never through results or messages. Every step can run
twice with the same outcome: staging is replaced per run, loads upsert on a
natural key, and the index and counts are rebuilt inside one transaction.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Sum

from etl import pipeline
from etl.models import (
    ImportBatch,
    IslandCount,
    Penguin,
    SearchTerm,
    SpeciesStats,
    StagedRow,
)
from workflows import StepContext, step

REJECTED_IN_RESULT = 100  # the batch row keeps them all; the result stays small
BATCH = 500


def _staged(context: StepContext):
    rows = StagedRow.objects.filter(run_id=context.run_id)
    if not rows.exists():
        raise LookupError(
            f"Nothing is staged for run {context.run_id}: extract has not run, or "
            "cleanup already removed it. Rerun from 'extract'."
        )
    return rows


def _valid_records(context: StepContext) -> list[dict]:
    rows = _staged(context).filter(valid=True).order_by("line")
    if not rows.exists():
        raise LookupError(
            f"No valid rows for run {context.run_id}: run validate first."
        )
    return [pipeline.normalise(data) for data in rows.values_list("data", flat=True)]


def _input(inputs: dict, kind: str) -> dict:
    """Return the one upstream result of *kind*; say which step is missing if none."""
    found = [
        v for v in inputs.values() if isinstance(v, dict) and v.get("kind") == kind
    ]
    if len(found) != 1:
        raise LookupError(
            f"Expected exactly one upstream step returning kind={kind!r}, "
            f"found {len(found)} among {sorted(inputs) or 'no upstream steps'}."
        )
    return found[0]


@step(
    "etl.extract",
    label="Extract CSV",
    description="Read a CSV shipped with the example into the staging table.",
    params_schema={
        "type": "object",
        "properties": {
            "dataset": {
                "type": "string",
                "title": "Dataset",
                "enum": list(pipeline.DATASETS),
                "default": pipeline.DATASETS[0],
            }
        },
        "additionalProperties": False,
    },
    timeout=120,
)
def extract(params: dict, inputs: dict, context: StepContext) -> dict:
    dataset = params.get("dataset", pipeline.DATASETS[0])
    rows = pipeline.read_rows(dataset)
    with transaction.atomic():
        StagedRow.objects.filter(run_id=context.run_id).delete()
        StagedRow.objects.bulk_create(
            [
                StagedRow(run_id=context.run_id, line=r["line"], data=r["data"])
                for r in rows
            ],
            batch_size=BATCH,
        )
    context.log(f"staged {len(rows)} rows of {dataset}")
    return {"kind": "extract", "dataset": dataset, "rows": len(rows)}


@step(
    "etl.validate",
    label="Validate rows",
    description=(
        "Check every staged row; report each rejected row with its line and the "
        "reasons. Fails when more than max_rejected_share of the rows are rejected. "
        "Honours the run param min_year (older rows are skipped, and counted)."
    ),
    params_schema={
        "type": "object",
        "properties": {
            "required": {
                "type": "array",
                "title": "Columns that must have a value",
                "items": {"type": "string", "enum": pipeline.COLUMNS},
                "uniqueItems": True,
                "default": pipeline.DEFAULT_REQUIRED,
            },
            "max_rejected_share": {
                "type": "number",
                "title": "Largest share of rejected rows that still passes",
                "minimum": 0,
                "maximum": 1,
                "default": 0.1,
            },
        },
        "additionalProperties": False,
    },
)
def validate(params: dict, inputs: dict, context: StepContext) -> dict:
    staged = _staged(context)
    rows = list(staged.values("line", "data"))
    min_year = context.run_params.get("min_year")
    outcome = pipeline.validate(
        rows, params.get("required", pipeline.DEFAULT_REQUIRED), min_year
    )
    dataset = next(
        (
            v["dataset"]
            for v in inputs.values()
            if isinstance(v, dict) and "dataset" in v
        ),
        pipeline.DATASETS[0],
    )
    with transaction.atomic():
        staged.update(valid=False)
        staged.filter(line__in=outcome["valid"]).update(valid=True)
        ImportBatch.objects.update_or_create(
            run_id=context.run_id,
            defaults={
                "dataset": dataset,
                "min_year": min_year,
                "rows_read": len(rows),
                "rows_valid": len(outcome["valid"]),
                "rows_rejected": len(outcome["rejected"]),
                "rows_skipped": len(outcome["skipped"]),
                "rejected": outcome["rejected"],
            },
        )
    for bad in outcome["rejected"]:
        context.log(
            f"line {bad['line']} ({bad['sample']}): {'; '.join(bad['reasons'])}"
        )
    share = len(outcome["rejected"]) / len(rows)
    limit = params.get("max_rejected_share", 0.1)
    if share > limit:
        raise ValueError(
            f"{len(outcome['rejected'])} of {len(rows)} rows rejected ({share:.1%}), "
            f"above max_rejected_share={limit:.1%}; see the import batch of run "
            f"{context.run_id} for the reasons."
        )
    return {
        "kind": "validate",
        "rows_read": len(rows),
        "valid": len(outcome["valid"]),
        "rejected": len(outcome["rejected"]),
        "skipped": len(outcome["skipped"]),
        "min_year": min_year,
        "rejected_rows": outcome["rejected"][:REJECTED_IN_RESULT],
    }


@step(
    "etl.normalise",
    label="Normalise units",
    description=(
        "Turn each valid row into a typed record: numbers, dates, common species "
        "names, lower-case sex, body mass in kilograms."
    ),
    params_schema={
        "type": "object",
        "properties": {
            "decimals": {
                "type": "integer",
                "title": "Decimals of body mass in kg",
                "minimum": 0,
                "maximum": 6,
                "default": 2,
            }
        },
        "additionalProperties": False,
    },
)
def normalise(params: dict, inputs: dict, context: StepContext) -> dict:
    decimals = params.get("decimals", 2)
    rows = list(_staged(context).filter(valid=True))
    species: dict[str, int] = {}
    for row in rows:
        row.record = pipeline.normalise(row.data, decimals)
        species[row.record["species"]] = species.get(row.record["species"], 0) + 1
    with transaction.atomic():
        _staged(context).update(record=None)
        StagedRow.objects.bulk_update(rows, ["record"], batch_size=BATCH)
    return {
        "kind": "records",
        "rows": len(rows),
        "species": dict(sorted(species.items())),
    }


@step(
    "etl.species_stats",
    label="Per-species statistics",
    description="Count, sexes, and mean / sd / min / max of each measure per species.",
    params_schema={
        "type": "object",
        "properties": {
            "measures": {
                "type": "array",
                "title": "Measures",
                "items": {"type": "string", "enum": list(pipeline.MEASURES)},
                "uniqueItems": True,
                "minItems": 1,
                "default": list(pipeline.MEASURES),
            }
        },
        "additionalProperties": False,
    },
)
def species_stats(params: dict, inputs: dict, context: StepContext) -> dict:
    measures = params.get("measures", list(pipeline.MEASURES))
    stats = pipeline.species_stats(_valid_records(context), measures)
    return {"kind": "species_stats", "species": stats}


@step(
    "etl.island_counts",
    label="Per-island counts",
    description="Count the valid penguins of each species on each island.",
    params_schema={"type": "object", "properties": {}, "additionalProperties": False},
)
def island_counts(params: dict, inputs: dict, context: StepContext) -> dict:
    return {
        "kind": "island_counts",
        "counts": pipeline.island_counts(_valid_records(context)),
    }


PENGUIN_FIELDS = [
    f.name for f in Penguin._meta.concrete_fields if f.name not in ("id", "sample_id")
]


@step(
    "etl.load",
    label="Load penguins",
    description=(
        "Upsert the normalised records into Penguin (on sample_id), and replace "
        "the species statistics and island counts, in one transaction. With "
        "prune, penguins absent from this batch are deleted."
    ),
    params_schema={
        "type": "object",
        "properties": {
            "prune": {
                "type": "boolean",
                "title": "Delete penguins that are not in this batch",
                "default": True,
            }
        },
        "additionalProperties": False,
    },
)
def load(params: dict, inputs: dict, context: StepContext) -> dict:
    rows = list(_staged(context).filter(valid=True).values_list("record", flat=True))
    stats = _input(inputs, "species_stats")["species"]
    counts = _input(inputs, "island_counts")["counts"]
    _input(inputs, "records")  # normalise must be upstream: it wrote the records
    if any(record is None for record in rows):
        raise LookupError(
            "Some valid rows have no normalised record: rerun 'normalise'."
        )
    penguins = [Penguin(**record, loaded_by_run=context.run_id) for record in rows]
    ids = [p.sample_id for p in penguins]
    with transaction.atomic():
        existing = set(
            Penguin.objects.filter(sample_id__in=ids).values_list(
                "sample_id", flat=True
            )
        )
        Penguin.objects.bulk_create(
            penguins,
            batch_size=BATCH,
            update_conflicts=True,
            unique_fields=["sample_id"],
            update_fields=PENGUIN_FIELDS,
        )
        pruned = 0
        if params.get("prune", True):
            _, per_model = Penguin.objects.exclude(sample_id__in=ids).delete()
            pruned = per_model.get(Penguin._meta.label, 0)  # not the index rows
        SpeciesStats.objects.exclude(species__in=list(stats)).delete()
        for species, entry in stats.items():
            SpeciesStats.objects.update_or_create(
                species=species,
                defaults={
                    "count": entry["count"],
                    "female": entry["female"],
                    "male": entry["male"],
                    "mean_body_mass_g": (entry.get("body_mass_g") or {}).get("mean"),
                    "mean_flipper_length_mm": (
                        entry.get("flipper_length_mm") or {}
                    ).get("mean"),
                    "measures": {k: v for k, v in entry.items() if isinstance(v, dict)},
                    "run_id": context.run_id,
                },
            )
        IslandCount.objects.all().delete()
        IslandCount.objects.bulk_create(IslandCount(**c) for c in counts)
    return {
        "penguins": len(penguins),
        "created": len(set(ids) - existing),
        "updated": len(existing),
        "pruned": pruned,
        "species": len(stats),
        "island_counts": len(counts),
    }


@step(
    "etl.build_index",
    label="Build search index",
    description="Rebuild the SearchTerm table (term -> penguin) from the penguins.",
    params_schema={
        "type": "object",
        "properties": {
            "fields": {
                "type": "array",
                "title": "Fields to index",
                "items": {"type": "string", "enum": list(pipeline.INDEX_FIELDS)},
                "uniqueItems": True,
                "minItems": 1,
                "default": list(pipeline.INDEX_FIELDS),
            },
            "min_length": {
                "type": "integer",
                "title": "Shortest term",
                "minimum": 1,
                "maximum": 10,
                "default": 2,
            },
        },
        "additionalProperties": False,
    },
)
def build_index(params: dict, inputs: dict, context: StepContext) -> dict:
    fields = params.get("fields", list(pipeline.INDEX_FIELDS))
    min_length = params.get("min_length", 2)
    entries = []
    for penguin in Penguin.objects.values("pk", *pipeline.INDEX_FIELDS):
        for term in sorted(pipeline.index_terms(penguin, fields, min_length)):
            entries.append(SearchTerm(term=term[:100], penguin_id=penguin["pk"]))
    with transaction.atomic():
        SearchTerm.objects.all().delete()
        SearchTerm.objects.bulk_create(entries, batch_size=BATCH)
    return {
        "entries": len(entries),
        "terms": len({e.term for e in entries}),
        "penguins": len({e.penguin_id for e in entries}),
    }


@step(
    "etl.cleanup",
    label="Remove staging",
    description="Delete this run's staged rows (the import batch keeps the figures).",
    params_schema={"type": "object", "properties": {}, "additionalProperties": False},
)
def cleanup(params: dict, inputs: dict, context: StepContext) -> dict:
    deleted, _ = StagedRow.objects.filter(run_id=context.run_id).delete()
    return {"deleted": deleted}


@step(
    "etl.report",
    label="Report",
    description="Summarise the run: rows read / valid / rejected, species, index.",
    params_schema={
        "type": "object",
        "properties": {
            "top_terms": {
                "type": "integer",
                "title": "Most frequent index terms to list",
                "minimum": 0,
                "maximum": 20,
                "default": 5,
            }
        },
        "additionalProperties": False,
    },
)
def report(params: dict, inputs: dict, context: StepContext) -> dict:
    batch = ImportBatch.objects.filter(run_id=context.run_id).first()
    if batch is None:
        raise LookupError(
            f"Run {context.run_id} has no import batch: validate did not run."
        )
    top = (
        SearchTerm.objects.values("term")
        .annotate(n=Count("penguin"))
        .order_by("-n", "term")[: params.get("top_terms", 5)]
    )
    summary = {
        "dataset": batch.dataset,
        "min_year": batch.min_year,
        "rows_read": batch.rows_read,
        "rows_valid": batch.rows_valid,
        "rows_rejected": batch.rows_rejected,
        "rows_skipped": batch.rows_skipped,
        "rejected_samples": [r["sample"] for r in batch.rejected],
        "penguins_loaded": Penguin.objects.count(),
        "species": {
            s.species: {
                "count": s.count,
                "female": s.female,
                "male": s.male,
                "mean_body_mass_g": s.mean_body_mass_g,
                "mean_flipper_length_mm": s.mean_flipper_length_mm,
            }
            for s in SpeciesStats.objects.all()
        },
        "islands": {
            row["island"]: row["total"]
            for row in IslandCount.objects.values("island")
            .annotate(total=Sum("count"))
            .order_by("island")
        },
        "index_entries": SearchTerm.objects.count(),
        "top_terms": {row["term"]: row["n"] for row in top},
        "staging_left": StagedRow.objects.filter(run_id=context.run_id).count(),
    }
    ImportBatch.objects.filter(pk=batch.pk).update(summary=summary)
    return summary
