"""Parquet files read and written without pyarrow in Phy's process.

pandas 3 imports pyarrow whenever it is installed (about 30 MB more than pandas alone, 60 MB once a file is
read), and Phy imports neither. So the package imports pandas with pyarrow hidden
(`import_pandas_without_pyarrow`: pandas' strings are then Python objects, which nothing here cares about),
and once the plugin calls `keep_pyarrow_out`, parquet files are read and written by a short-lived child
process for as long as pyarrow is not loaded here (about 0.6 s and 135 MB at its peak for a run's two result
files). The child answers with plain numpy columns pickled over its stdout: our own process talking; no file
from a data folder is ever unpickled. Elsewhere (the command line, tests) pyarrow is imported when a file is
first read, as usual. The tables come out the same either way: plain columns, a default index.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import first_line
from .children import spawn_options

if TYPE_CHECKING:
    import pandas as pd

_keep_out = False


def import_pandas_without_pyarrow() -> None:
    """Import pandas, if nothing has yet, without letting it import pyarrow; pyarrow stays importable."""
    if "pandas" in sys.modules or "pyarrow" in sys.modules:
        return
    sys.modules["pyarrow"] = None  # an import of it fails, as if not installed
    try:
        import pandas  # noqa: F401
    finally:
        del sys.modules["pyarrow"]


def keep_pyarrow_out() -> None:
    """From now on, read and write parquet files in a child process while this one has not loaded pyarrow."""
    global _keep_out
    _keep_out = True


def _in_child() -> bool:
    return _keep_out and sys.modules.get("pyarrow") is None


def _columns(table) -> dict:
    return {name: table[name].to_numpy() for name in table.columns}


def _read(path: Path) -> tuple[bool, object]:
    """(True, columns) or (False, the first line of why not)."""
    import pandas as pd

    try:
        return True, _columns(pd.read_parquet(path))
    except Exception as exc:  # pyarrow raises many types for truncated or foreign files
        return False, first_line(exc)


def _write(path: Path, columns: dict) -> tuple[bool, object]:
    import pandas as pd

    try:
        pd.DataFrame(columns).to_parquet(path)
        return True, None
    except Exception as exc:
        return False, first_line(exc)


def _child(request: tuple) -> list[tuple[bool, object]]:
    """Run ``request`` in the child process: ("read", paths) or ("write", path, columns)."""
    package_parent = str(Path(__file__).resolve().parents[2])  # the folder phy_bcreason/ is in
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
    # at Phy's priority (Phy waits for it); it reads its whole request first, so if Phy is gone it ends when its
    # answer finds nobody to read it (a second at most)
    done = subprocess.run([sys.executable, "-c", "from phy_bcreason.io.parquet import main; main()"],
                          input=pickle.dumps(request), capture_output=True, env=env, **spawn_options())
    if done.returncode != 0:
        why = (done.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        count = len(request[1]) if request[0] == "read" else 1
        return [(False, f"the process reading parquet files failed: {why}")] * count
    return pickle.loads(done.stdout)


def read_tables(paths: list[Path]) -> list[pd.DataFrame | str]:
    """Each file's table (a pandas DataFrame), or a one-line string saying why it cannot be read."""
    import pandas as pd

    answers = _child(("read", [str(p) for p in paths])) if _in_child() else [_read(p) for p in paths]
    return [pd.DataFrame(payload) if ok else payload for ok, payload in answers]


def write_table(table: pd.DataFrame, path: Path) -> None:
    """``table.to_parquet(path)``, with a default index; OSError with one line when it cannot be written."""
    columns = _columns(table.reset_index(drop=True))
    ok, why = _child(("write", str(path), columns))[0] if _in_child() else _write(path, columns)
    if not ok:
        raise OSError(f"{path}: cannot write ({why})")


def main() -> None:
    """The child: a request pickled on stdin, the answers pickled on stdout."""
    request = pickle.load(sys.stdin.buffer)
    if request[0] == "read":
        answers = [_read(Path(p)) for p in request[1]]
    else:
        answers = [_write(Path(request[1]), request[2])]
    sys.stdout.buffer.write(pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL))
