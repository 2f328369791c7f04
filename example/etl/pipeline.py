"""Pure ETL logic over the Palmer Penguins CSV: parse, check, normalise, aggregate.

No ORM here, so the tests exercise every rule on the real file without a
database; ``steps.py`` wraps these functions with the database work.
"""

from __future__ import annotations

import csv
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
DATASETS = ("penguins-raw.csv",)

# The raw file spells a missing value "NA"; one row has "." as its sex.
MISSING = {"", "NA", "."}
MEASURES = {
    "bill_length_mm": "Culmen Length (mm)",
    "bill_depth_mm": "Culmen Depth (mm)",
    "flipper_length_mm": "Flipper Length (mm)",
    "body_mass_g": "Body Mass (g)",
}
ISOTOPES = {"delta_15n": "Delta 15 N (o/oo)", "delta_13c": "Delta 13 C (o/oo)"}
IDENTITY = ("studyName", "Sample Number", "Species", "Island", "Date Egg")
DEFAULT_REQUIRED = [*IDENTITY, *MEASURES.values(), "Sex"]
COLUMNS = [
    "studyName", "Sample Number", "Species", "Region", "Island", "Stage",
    "Individual ID", "Clutch Completion", "Date Egg", *MEASURES.values(), "Sex",
    *ISOTOPES.values(), "Comments",
]  # fmt: skip
SEXES = {"MALE": "male", "FEMALE": "female"}
SPECIES_RE = re.compile(r"^(?P<common>\w+) [Pp]enguin \((?P<latin>[^)]+)\)$")


def read_rows(dataset: str = DATASETS[0]) -> list[dict]:
    """Return the rows of *dataset* (a file of ``data/``) with their line numbers.

    Raises ValueError for a name that is not one of DATASETS, so a params
    value can never reach another file, and when a column is missing.
    """
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; known: {', '.join(DATASETS)}.")
    with (DATA_DIR / dataset).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{dataset}: missing columns {', '.join(missing)}")
        # Line 1 is the header; line numbers match what an editor shows.
        return [{"line": n, "data": row} for n, row in enumerate(reader, start=2)]


def is_missing(value: str | None) -> bool:
    """Return True for the spellings of a missing value in the raw file."""
    return value is None or value.strip() in MISSING


def species_name(raw: str) -> str:
    """Return the common name ("Adelie") of a raw species label."""
    match = SPECIES_RE.match(raw.strip())
    return match["common"].capitalize() if match else raw.strip()


def sample_id(data: dict) -> str:
    """Return the stable id of a row: species and sample number, e.g. ``adelie-7``.

    The sample number restarts for each species, and the pair is unique in the
    file; ``load`` upserts on it, so a second load changes nothing.
    """
    return f"{species_name(data['Species']).lower()}-{data['Sample Number'].strip()}"


def check_row(data: dict, required: Iterable[str] = DEFAULT_REQUIRED) -> list[str]:
    """Return why the raw row *data* cannot be loaded (an empty list if it can)."""
    problems = [
        f"{column} is missing" for column in required if is_missing(data.get(column))
    ]
    for field, column in {**MEASURES, **ISOTOPES}.items():
        value = data.get(column)
        if is_missing(value):
            continue
        try:
            number = float(value)
        except ValueError:
            problems.append(f"{column} is not a number: {value!r}")
            continue
        if field in MEASURES and number <= 0:
            problems.append(f"{column} must be positive: {value!r}")
    sex = data.get("Sex")
    if not is_missing(sex) and sex.strip().upper() not in SEXES:
        problems.append(f"Sex is not MALE or FEMALE: {sex!r}")
    if not is_missing(data.get("Date Egg")):
        try:
            date.fromisoformat(data["Date Egg"].strip())
        except ValueError:
            problems.append(f"Date Egg is not a date: {data['Date Egg']!r}")
    if not is_missing(data.get("Species")) and not SPECIES_RE.match(data["Species"]):
        problems.append(f"Species is not recognised: {data['Species']!r}")
    return problems


def row_year(data: dict) -> int | None:
    """Return the year the nest was observed (from Date Egg), or None."""
    try:
        return date.fromisoformat(data["Date Egg"].strip()).year
    except (KeyError, AttributeError, ValueError):
        return None


def validate(
    rows: Iterable[dict],
    required: Iterable[str] = DEFAULT_REQUIRED,
    min_year: int | None = None,
) -> dict:
    """Sort *rows* into valid, rejected and skipped; never drop one silently.

    Returns ``{"valid": [lines], "rejected": [{"line", "sample", "reasons"}],
    "skipped": [lines]}``. A row is skipped (not rejected) when it is fine but
    older than *min_year*.
    """
    required = list(required)
    out: dict = {"valid": [], "rejected": [], "skipped": []}
    for row in rows:
        data = row["data"]
        reasons = check_row(data, required)
        if reasons:
            out["rejected"].append(
                {
                    "line": row["line"],
                    "sample": _safe_sample_id(data),
                    "reasons": reasons,
                }
            )
        elif min_year is not None and (row_year(data) or 0) < min_year:
            out["skipped"].append(row["line"])
        else:
            out["valid"].append(row["line"])
    return out


def _safe_sample_id(data: dict) -> str:
    try:
        return sample_id(data)
    except (KeyError, AttributeError):
        return "?"


def _number(value: str | None) -> float | None:
    return None if is_missing(value) else float(value)


def normalise(data: dict, decimals: int = 2) -> dict:
    """Return the clean record of a valid raw row: typed values, metric units.

    Lengths stay in millimetres; body mass is given in grams and kilograms;
    species become their common name; sex becomes ``male``/``female``.
    """
    record = {
        "sample_id": sample_id(data),
        "study": data["studyName"].strip(),
        "sample_number": int(data["Sample Number"]),
        "species": species_name(data["Species"]),
        "island": data["Island"].strip(),
        "region": "" if is_missing(data.get("Region")) else data["Region"].strip(),
        "individual_id": ""
        if is_missing(data.get("Individual ID"))
        else data["Individual ID"].strip(),
        "clutch_completion": data.get("Clutch Completion", "").strip() == "Yes",
        "date_egg": data["Date Egg"].strip(),
        "year": row_year(data),
        "sex": SEXES.get((data.get("Sex") or "").strip().upper(), ""),
        "comments": ""
        if is_missing(data.get("Comments"))
        else data["Comments"].strip(),
    }
    for field, column in {**MEASURES, **ISOTOPES}.items():
        record[field] = _number(data.get(column))
    mass = record["body_mass_g"]
    record["body_mass_kg"] = None if mass is None else round(mass / 1000, decimals)
    return record


def species_stats(
    records: Iterable[dict], measures: Iterable[str] = tuple(MEASURES)
) -> dict[str, dict]:
    """Return, per species, the count, sexes and mean/sd/min/max of *measures*."""
    measures = list(measures)
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[record["species"]].append(record)
    stats = {}
    for species, group in sorted(groups.items()):
        entry: dict = {
            "count": len(group),
            "female": sum(r["sex"] == "female" for r in group),
            "male": sum(r["sex"] == "male" for r in group),
        }
        for field in measures:
            values = [r[field] for r in group if r.get(field) is not None]
            if not values:
                continue
            entry[field] = {
                "mean": round(statistics.fmean(values), 2),
                "sd": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
                "min": min(values),
                "max": max(values),
            }
        stats[species] = entry
    return stats


def island_counts(records: Iterable[dict]) -> list[dict]:
    """Return ``[{"island", "species", "count"}]`` sorted by island then species."""
    counts = Counter((r["island"], r["species"]) for r in records)
    return [
        {"island": island, "species": species, "count": n}
        for (island, species), n in sorted(counts.items())
    ]


TOKEN_RE = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")
INDEX_FIELDS = (
    "sample_id",
    "species",
    "island",
    "sex",
    "individual_id",
    "year",
    "comments",
)


def index_terms(
    record: dict, fields: Iterable[str] = INDEX_FIELDS, min_length: int = 2
) -> set[str]:
    """Return the lower-case search terms of *record* taken from *fields*."""
    terms: set[str] = set()
    for field in fields:
        value = record.get(field)
        if value in (None, ""):
            continue
        for token in TOKEN_RE.findall(str(value).lower()):
            if len(token) >= min_length:
                terms.add(token)
    return terms


def chunks(items: list, size: int) -> Iterator[list]:
    """Yield *items* in lists of at most *size* (bulk writes stay small)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
