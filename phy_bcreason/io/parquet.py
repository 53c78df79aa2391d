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
TEXT_TYPES = ("str", "object", "string")  # pandas' dtypes of a text column in its metadata: all read as text


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


def _plain_columns(table) -> dict | None:
    """The columns of a pyarrow table as `_columns` gives them from ``pd.read_parquet`` (numpy arrays), taken
    from pyarrow directly, which skips pandas' conversion and its frame (about half the time of reading a
    run's two tables); None when a column is of a kind pandas converts otherwise: a null cell in an integer,
    boolean or text column (a column of nulls only is None's), a pandas dtype written in the file's pandas
    metadata (nullable, categorical, pyarrow-backed), dates, lists, a repeated or non-text column name."""
    import numpy as np
    import pyarrow.types as types

    meta = table.schema.pandas_metadata or {}
    levels = meta.get("column_indexes") or ()
    if len(levels) > 1 or any(level.get("pandas_type") != "unicode" for level in levels):
        return None  # column names of more than one level, or not text
    index = {name for name in meta.get("index_columns", ()) if isinstance(name, str)}
    written = {column.get("field_name"): column for column in meta.get("columns", ())}
    names = table.column_names
    if len(set(names)) != len(names):
        return None
    columns = {}
    for name, field, chunks in zip(names, table.schema, table.columns):
        if name in index:
            continue
        kind = field.type
        text = types.is_string(kind) or types.is_large_string(kind)
        if types.is_null(kind):  # a column of None (Bombcell's parameters: paths it was not given)
            values = np.full(len(chunks), None, dtype=object)
        elif types.is_floating(kind) or ((types.is_integer(kind) or types.is_boolean(kind) or text)
                                         and chunks.null_count == 0):
            values = np.asarray(chunks.to_numpy())
        else:
            return None
        column = written.get(name)
        if column is not None and (column.get("name") != name or column.get("numpy_type") not in
                                   (TEXT_TYPES if text else (values.dtype.name,))):
            return None
        columns[name] = values
    return columns


def _read(path: Path) -> tuple[bool, object]:
    """(True, columns) or (False, the first line of why not)."""
    try:
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as file:
            table = file.read(use_threads=False)  # small tables: threads only cost here
        columns = _plain_columns(table)
        if columns is None:
            import pandas as pd

            columns = _columns(pd.read_parquet(path))
        return True, columns
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
