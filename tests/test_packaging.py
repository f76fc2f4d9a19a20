"""A non-editable install (a wheel built from the checkout) carries the model catalog."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_catalog(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("sonoscope-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "engine/catalog/whisper.json" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    # -S: no site-packages, so neither the editable install of this checkout nor anything else is visible;
    # the store needs only the standard library to read its catalog
    code = ("import json, engine, engine.store as s; "
            "print(json.dumps({'file': engine.__file__, "
            "'ids': sorted(m.id for m in s.ModelStore(root='models').catalog())}))")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert Path(got["file"]).is_relative_to(site)
    assert {"whisper-tiny.en", "whisper-base", "spleeter-2stems", "silero-vad"} <= set(got["ids"])
