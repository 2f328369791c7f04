"""The wheel carries what a project needs at run time: templates, static files, data."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_templates_static_files_and_migrations(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path, ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("django_dagflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = [
        path.relative_to(ROOT).as_posix()
        for folder in ("admin_graph/templates", "admin_graph/static")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
    ]
    expected += ["workflows/migrations/0001_initial.py", "workflows/py.typed"]
    assert len(expected) > 10
    missing = [name for name in expected if name not in names]
    assert not missing, f"missing from the wheel: {missing}"
    assert not any(name.startswith(("tests/", "example/")) for name in names)
