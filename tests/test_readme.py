"""The README's "Use from Python" example runs as written (in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, f"README section {title!r}: expected one python block"
    return blocks[0]


def test_use_from_python_example_runs(tmp_path, crbench_data_dir):
    script = tmp_path / "example.py"
    script.write_text(_section_code("Use from Python"), encoding="utf-8")
    env = {**os.environ, "CRBENCH_DATA_DIR": str(crbench_data_dir)}
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^astroscrappy: recall 0\.\d{3}, precision 0\.\d{3}$", out.stdout, re.M)
    assert re.search(r"^sigma5: recall 0\.\d{3}, precision 0\.\d{3}$", out.stdout, re.M)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert {r["detector"] for r in doc["scores"]} == {"astroscrappy", "sigma5"}
    assert {r["region"] for r in doc["scores"]} == {"full", "k3", "k20"}
