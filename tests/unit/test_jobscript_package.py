"""The templates ship inside the package: a non-editable install renders them too."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_the_templates(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("kant_slurm-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in sorted((ROOT / "templates").iterdir()):
        assert f"kant_slurm/data/templates/{f.name}" in names, f.name
    # Render from the unpacked wheel, in a fresh interpreter that cannot see the source tree.
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kant_slurm.jobscript as j; "
            "assert j.render.__globals__['__file__'].startswith(sys.argv[1]); "
            "print(j.render('training', [('t', {'program': ['x'], 'time': '60'})])[:11])")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path / "site")],
                         cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "#!/bin/bash"
