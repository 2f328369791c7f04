"""The example project: its ETL logic on the real Palmer Penguins file, its steps
against a real database, and ``example/demo.py --once`` end to end.

The example's ``etl`` app is not installed in the test settings, so the pure
functions are loaded from their file, and the steps run in a subprocess with the
example's own settings on a temporary SQLite file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.conf import settings

from workflows import compiler
from workflows.dag import build_graph

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example"
FIXTURE = EXAMPLE / "etl" / "fixtures" / "penguins_etl.json"


def _load_pipeline():
    spec = importlib.util.spec_from_file_location(
        "example_etl_pipeline", EXAMPLE / "etl" / "pipeline.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pipeline = _load_pipeline()


@pytest.fixture(scope="module")
def rows():
    return pipeline.read_rows()


@pytest.fixture(scope="module")
def records(rows):
    outcome = pipeline.validate(rows)
    valid = set(outcome["valid"])
    return [pipeline.normalise(r["data"]) for r in rows if r["line"] in valid]


def _example_env(tmp_path: Path, **extra: str) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND",
            "CELERY_QUEUE",
        )
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example.settings",
        EXAMPLE_VAR_DIR=str(tmp_path / "var"),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(EXAMPLE)]),
        **extra,
    )
    return env


# --- the pure ETL logic on the real file -------------------------------------


def test_read_rows_keeps_every_row_with_its_line(rows):
    assert len(rows) == 344
    assert rows[0]["line"] == 2  # line 1 is the header
    assert rows[-1]["line"] == 345
    assert rows[0]["data"]["Species"] == "Adelie Penguin (Pygoscelis adeliae)"


def test_read_rows_refuses_a_file_outside_the_list():
    with pytest.raises(ValueError, match="Unknown dataset"):
        pipeline.read_rows("../../../etc/passwd")


def test_validate_reports_each_row_with_missing_values_and_why(rows):
    outcome = pipeline.validate(rows)
    assert len(outcome["valid"]) == 333
    assert len(outcome["rejected"]) == 11
    assert outcome["skipped"] == []
    by_line = {bad["line"]: bad for bad in outcome["rejected"]}
    # Line 5 is Adelie sample 4: no measurements and no sex at all.
    assert by_line[5]["sample"] == "adelie-4"
    assert "Body Mass (g) is missing" in by_line[5]["reasons"]
    assert "Sex is missing" in by_line[5]["reasons"]
    # Every rejected row has a reason, and each one really lacks the value.
    for bad in outcome["rejected"]:
        assert bad["reasons"]
        data = rows[bad["line"] - 2]["data"]
        assert any(pipeline.is_missing(data[c]) for c in pipeline.DEFAULT_REQUIRED)
    no_measures = [
        bad
        for bad in outcome["rejected"]
        if "Culmen Length (mm) is missing" in bad["reasons"]
    ]
    assert len(no_measures) == 2


def test_validate_accounts_for_every_row(rows):
    outcome = pipeline.validate(rows, min_year=2009)
    lines = (
        outcome["valid"] + outcome["skipped"] + [b["line"] for b in outcome["rejected"]]
    )
    assert sorted(lines) == [r["line"] for r in rows]
    assert outcome["skipped"]  # 2007 and 2008 nests
    assert all(
        pipeline.row_year(rows[line - 2]["data"]) == 2009 for line in outcome["valid"]
    )


def test_optional_columns_do_not_reject(rows):
    outcome = pipeline.validate(rows, required=["Species", "Island"])
    # Missing values reject a row only in required columns; isotopes, sex and
    # the measures are then optional.
    assert len(outcome["rejected"]) == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Body Mass (g)": "heavy"}, "Body Mass (g) is not a number: 'heavy'"),
        ({"Flipper Length (mm)": "-3"}, "Flipper Length (mm) must be positive"),
        ({"Sex": "UNKNOWN"}, "Sex is not MALE or FEMALE"),
        ({"Date Egg": "2007-13-40"}, "Date Egg is not a date"),
        ({"Species": "Emperor"}, "Species is not recognised"),
        ({"Island": "NA"}, "Island is missing"),
    ],
)
def test_check_row_names_the_problem(rows, change, reason):
    data = {**rows[1]["data"], **change}
    assert pipeline.check_row(rows[1]["data"]) == []
    problems = pipeline.check_row(data)
    assert any(reason in p for p in problems), problems


def test_normalise_types_and_units(rows):
    record = pipeline.normalise(rows[1]["data"])
    assert record == {
        **record,
        "sample_id": "adelie-2",
        "species": "Adelie",
        "island": "Torgersen",
        "sex": "female",
        "year": 2007,
        "bill_length_mm": 39.5,
        "body_mass_g": 3800.0,
        "body_mass_kg": 3.8,
        "delta_15n": 8.94956,
        "clutch_completion": True,
    }
    assert pipeline.normalise(rows[0]["data"])["delta_15n"] is None  # "NA"


def test_sample_ids_are_unique(records):
    assert len({r["sample_id"] for r in records}) == len(records)


def test_species_stats_match_the_published_figures(records):
    stats = pipeline.species_stats(records)
    assert {k: v["count"] for k, v in stats.items()} == {
        "Adelie": 146,
        "Chinstrap": 68,
        "Gentoo": 119,
    }
    assert stats["Adelie"]["body_mass_g"]["mean"] == 3706.16
    assert stats["Gentoo"]["body_mass_g"]["max"] == 6300.0
    assert stats["Chinstrap"]["female"] == stats["Chinstrap"]["male"] == 34
    json.dumps(stats, allow_nan=False)  # storable as a step result


def test_island_counts(records):
    counts = pipeline.island_counts(records)
    assert sum(c["count"] for c in counts) == 333
    assert {"island": "Torgersen", "species": "Adelie", "count": 47} in counts
    assert not any(
        c["island"] == "Torgersen" and c["species"] != "Adelie" for c in counts
    )


def test_index_terms(records):
    terms = pipeline.index_terms(records[0])
    assert {"adelie-1", "adelie", "torgersen", "male", "2007", "n1a1"} <= terms
    assert all(len(t) >= 2 for t in terms)


def test_fixture_runs_the_transforms_and_the_tail_in_parallel():
    spec = json.loads(FIXTURE.read_text())
    block = compiler.decompose(build_graph(spec["steps"]))
    keys = [
        part.key
        if isinstance(part, compiler.Step)
        else sorted(p.key for p in part.parts)
        for part in block.parts
    ]
    assert keys == [
        "extract",
        "validate",
        ["island_counts", "normalise", "species_stats"],
        "load",
        ["build_index", "cleanup"],
        "report",
    ]


# --- the steps against a real database ----------------------------------------

STEPS_SCRIPT = textwrap.dedent(
    """
    import hashlib, json
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from workflows import StepContext
    from workflows.registry import registry
    from workflows.spec import validate_workflow_spec
    from etl import steps
    from etl.models import (
        ImportBatch, IslandCount, Penguin, SearchTerm, SpeciesStats, StagedRow)

    out = {}
    spec = json.load(open("etl/fixtures/penguins_etl.json"))
    validate_workflow_spec(spec)
    out["types"] = sorted(n for n in registry.names() if n.startswith("etl."))
    PARAMS = {s["key"]: s.get("params", {}) for s in spec["steps"]}

    def state(run_id):
        penguins = list(Penguin.objects.order_by("sample_id").values_list(
            "sample_id", "species", "island", "sex", "year", "body_mass_g",
            "body_mass_kg", "delta_15n", "date_egg"))
        staged = StagedRow.objects.filter(run_id=run_id)
        return {
            "penguins": len(penguins),
            "penguins_sha": hashlib.sha256(
                json.dumps(penguins, default=str).encode()).hexdigest(),
            "stats": list(SpeciesStats.objects.values_list(
                "species", "count", "mean_body_mass_g", "measures")),
            "islands": list(IslandCount.objects.values_list(
                "island", "species", "count")),
            "terms": SearchTerm.objects.count(),
            "staged": staged.count(),
            "staged_valid": staged.filter(valid=True).count(),
            "staged_records": staged.exclude(record=None).count(),
            "batch": list(ImportBatch.objects.filter(run_id=run_id).values_list(
                "rows_read", "rows_valid", "rows_rejected", "rows_skipped",
                "rejected")),
        }

    ORDER = [("extract", []), ("validate", ["extract"]),
             ("normalise", ["validate"]), ("species_stats", ["validate"]),
             ("island_counts", ["validate"]),
             ("load", ["normalise", "species_stats", "island_counts"]),
             ("build_index", ["load"]), ("cleanup", ["load"]),
             ("report", ["build_index", "cleanup"])]

    def run(run_id, run_params=None, twice=False, params=None):
        results, same = {}, {}
        for key, after in ORDER:
            function = getattr(steps, key)
            p = {**PARAMS[key], **(params or {}).get(key, {})}
            def call():
                context = StepContext(run_id=run_id, step_key=key, attempt=1,
                                      run_params=run_params or {})
                return function(p, {k: results[k] for k in after}, context)
            results[key] = call()
            json.dumps(results[key], allow_nan=False)
            if twice:
                first = state(run_id)
                results[key] = call()
                same[key] = first == state(run_id)
        return results, same

    results, _ = run(1)
    out["run1"] = {"results": results, "state": state(1)}
    from workflows.steps import management_command
    search = StepContext(run_id=1, step_key="search", attempt=1, run_params={})
    management_command(
        {"command": "penguin_search", "args": ["gentoo", "biscoe", "female"]},
        {},
        search,
    )
    out["search_log"] = "\\n".join(search.lines)
    results, same = run(2, twice=True)
    out["run2"] = {"results": results, "state": state(2), "same": same}
    results, _ = run(3, run_params={"min_year": 2009})
    out["run3"] = {"results": results, "state": state(3)}

    steps.extract(PARAMS["extract"], {}, StepContext(4, "extract", 1, {}))
    try:
        gate = {"max_rejected_share": 0.01}
        steps.validate(gate, {}, StepContext(4, "validate", 1, {}))
    except ValueError as exc:
        out["gate"] = str(exc)
    out["gate_batch"] = state(4)["batch"]
    try:
        steps.load({}, {}, StepContext(5, "load", 1, {}))
    except LookupError as exc:
        out["no_staging"] = str(exc)
    print("RESULT " + json.dumps(out, default=str))
    """
)


@pytest.fixture(scope="module")
def steps_outcome(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("example-steps")
    proc = subprocess.run(
        [sys.executable, "-c", STEPS_SCRIPT],
        cwd=EXAMPLE,
        env=_example_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_steps_are_registered_and_the_fixture_validates(steps_outcome):
    assert steps_outcome["types"] == [
        "etl.build_index",
        "etl.cleanup",
        "etl.extract",
        "etl.island_counts",
        "etl.load",
        "etl.normalise",
        "etl.report",
        "etl.species_stats",
        "etl.validate",
    ]


def test_validate_step_reports_rejected_rows_in_its_result(steps_outcome):
    result = steps_outcome["run1"]["results"]["validate"]
    assert (result["rows_read"], result["valid"], result["rejected"]) == (344, 333, 11)
    assert {b["sample"] for b in result["rejected_rows"]} >= {"adelie-4"}
    assert all(b["reasons"] for b in result["rejected_rows"])
    batch = steps_outcome["run1"]["state"]["batch"]
    assert batch[0][:4] == [344, 333, 11, 0]
    assert len(batch[0][4]) == 11


def test_results_stay_small(steps_outcome):
    for key, result in steps_outcome["run1"]["results"].items():
        assert len(json.dumps(result)) < 5000, key


def test_load_index_cleanup_and_report(steps_outcome):
    run1 = steps_outcome["run1"]
    assert run1["results"]["load"]["created"] == 333
    assert run1["state"]["penguins"] == 333
    assert run1["state"]["terms"] == run1["results"]["build_index"]["entries"] > 333
    assert run1["state"]["staged"] == 0  # cleanup removed the staging
    assert run1["results"]["cleanup"]["deleted"] == 344
    report = run1["results"]["report"]
    assert report["rows_read"] == 344
    assert report["rows_rejected"] == 11
    assert report["penguins_loaded"] == 333
    assert report["species"]["Adelie"]["count"] == 146
    assert report["staging_left"] == 0
    assert sum(report["islands"].values()) == 333


def test_every_step_twice_gives_the_same_database(steps_outcome):
    run2 = steps_outcome["run2"]
    assert run2["same"] == dict.fromkeys(run2["same"], True)
    assert len(run2["same"]) == 9
    # A second run neither duplicates nor changes what the first one loaded.
    assert run2["results"]["load"]["created"] == 0
    assert run2["results"]["load"]["updated"] == 333
    for key in ("penguins", "penguins_sha", "stats", "islands", "terms"):
        assert run2["state"][key] == steps_outcome["run1"]["state"][key], key


def test_min_year_run_param_skips_and_prunes(steps_outcome):
    run3 = steps_outcome["run3"]
    validate = run3["results"]["validate"]
    assert validate["skipped"] > 0
    assert validate["valid"] + validate["skipped"] + validate["rejected"] == 344
    assert run3["state"]["penguins"] == validate["valid"] < 333
    assert run3["results"]["load"]["pruned"] == 333 - validate["valid"]


def test_validate_gate_fails_but_keeps_the_report(steps_outcome):
    assert "11 of 344 rows rejected" in steps_outcome["gate"]
    assert steps_outcome["gate_batch"][0][2] == 11


def test_the_allowed_command_searches_the_index(steps_outcome):
    assert "58 penguin(s) match 'gentoo biscoe female'" in steps_outcome["search_log"]


def test_a_step_without_staging_says_what_to_rerun(steps_outcome):
    assert "Rerun from 'extract'" in steps_outcome["no_staging"]


# --- make demo, end to end --------------------------------------------------


def _brokers():
    return ["filesystem", "redis"] if settings.BROKER == "redis" else ["filesystem"]


@pytest.mark.integration
@pytest.mark.parametrize("broker", _brokers())
def test_demo_once_runs_the_etl_through_a_real_worker(tmp_path, broker):
    extra = {"DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    if broker == "redis":
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1).ping()
        except redis.RedisError:
            if os.environ.get("DAGFLOW_REQUIRE_REDIS"):
                pytest.fail(f"Redis does not answer at {settings.REDIS_URL}")
            pytest.skip(f"Redis does not answer at {settings.REDIS_URL}")
        extra["CELERY_BROKER_URL"] = settings.REDIS_URL
        # Its own queue: other sessions may run demos on this Redis at once.
        extra["CELERY_QUEUE"] = f"demo-{tmp_path.name}-{os.getpid()}"
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "demo.py"), "--once", "--port", "0"],
        cwd=ROOT,
        env=_example_env(tmp_path, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the demo stops its worker and server
        output, _ = proc.communicate(timeout=60)
        pytest.fail(f"demo.py --once did not end within 120 s:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]
    assert "Run 1 of penguins-etl: success" in output
    assert "344 read, 333 valid, 11 rejected" in output
    assert "(login admin / admin)" in output

    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        status = db.execute("SELECT status FROM workflows_workflowrun").fetchall()
        step_rows = db.execute(
            "SELECT key, status, result FROM workflows_steprun ORDER BY key"
        ).fetchall()
        penguins = db.execute("SELECT COUNT(*) FROM etl_penguin").fetchone()[0]
    assert status == [("success",)]
    assert [k for k, _s, _r in step_rows] == sorted(
        s["key"] for s in json.loads(FIXTURE.read_text())["steps"]
    )
    for key, step_status, result in step_rows:
        assert step_status == "success", key
        assert result is not None and json.loads(result) is not None, key
    assert penguins == 333


def _descendants(pid: int) -> set[int]:
    """Return the pids of every living descendant of *pid* (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_demo_stops_quietly_on_ctrl_c_and_a_second_signal(tmp_path):
    """Ctrl-C (SIGINT to the whole group), then SIGTERM during the cleanup, as
    `make` forwards it: no traceback, exit 0, no worker or server left behind."""
    import contextlib
    import signal
    import threading
    import time

    env = _example_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "demo.py"), "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as in a terminal
    )
    lines: list[str] = []
    stopping = threading.Event()
    admin = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Admin:"):
                admin.set()
            if line.startswith("Stopping the"):
                stopping.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    children: set[int] = set()
    try:
        assert admin.wait(120), "".join(lines)[-4000:]
        time.sleep(0.5)
        children = _descendants(proc.pid)
        assert len(children) >= 2  # the worker (and its pool) and the server
        os.killpg(proc.pid, signal.SIGINT)
        assert stopping.wait(30), "".join(lines)[-4000:]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # a second signal mid-cleanup
        proc.wait(90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in _descendants(proc.pid) | children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    reader.join(10)
    output = "".join(lines)
    assert "Traceback" not in output, output[-4000:]
    assert "KeyboardInterrupt" not in output, output[-4000:]
    assert "Stopped the worker." in output, output[-4000:]
    assert proc.returncode == 0, output[-4000:]
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)]
