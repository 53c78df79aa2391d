"""Text on any console and in every file: the CLI prints on a Windows console's code page without failing, and
the tables it writes are UTF-8 with \\n line ends whatever the OS."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from phy_bcreason.cli import main

DEMO = Path(__file__).resolve().parents[1] / "phy_bcreason" / "demo_data"
COMMANDS = (["explain", "{ks}"], ["summary", "{ks}"], ["methods", "{ks}"], ["audit", "{ks}", "--out", "{out}"])


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    return Path(shutil.copytree(DEMO, tmp_path / "ks"))


# a redirected Windows stream encodes in the ANSI code page: cp1252 in the West, cp932 in Japan, where µ, ±, ✓
# cannot be encoded
@pytest.mark.parametrize("encoding", ["cp1252", "cp932"])
def test_cli_output_redirected_on_a_windows_code_page_never_fails(encoding, demo_copy, tmp_path):
    # each command as `phy-bcreason ...` runs it (main), in one interpreter whose stdout is a file
    commands = [[a.format(ks=demo_copy, out=tmp_path / "audit") for a in c] for c in COMMANDS]
    script = ("import sys\nfrom phy_bcreason.cli import main\n"
              f"sys.exit(max(main(args) for args in {commands!r}))\n")
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    env.pop("PYTHONUTF8", None)
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        code = subprocess.run([sys.executable, "-c", script], stdout=stdout, stderr=stderr, env=env,
                              timeout=300).returncode
    errors = err.read_bytes().decode(encoding)
    assert code == 0, errors
    assert "Traceback" not in errors
    printed = out.read_bytes().decode(encoding)
    assert "runs audited" in printed and "GOOD" in printed   # every command printed


def test_tables_written_end_lines_with_newline_on_windows_too(demo_copy, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "linesep", "\r\n")  # pandas' to_csv ends lines with os.linesep unless told
    assert main(["export", str(demo_copy)]) == 0
    assert main(["audit", str(demo_copy), "--out", str(tmp_path / "audit"), "--no-report"]) == 0
    tables = [demo_copy / "cluster_bc_classificationReason.tsv", *(tmp_path / "audit").glob("*.tsv"),
              *demo_copy.glob("bombcell/*.tsv")]
    assert len(tables) >= 4, tables
    for table in tables:
        data = table.read_bytes()
        assert b"\r" not in data and data.endswith(b"\n"), table
        data.decode("utf-8")
        assert not pd.read_csv(table, sep="\t").empty
