"""Register (or remove) the phy-bcreason plugin in Phy's user configuration: one job, in one module (it is also
run alone, with the standard library only, by ``install_plugin.py`` from a checkout).

Usage::

    phy-bcreason install-plugin [--config-dir DIR] [--dry-run]
    phy-bcreason uninstall-plugin [--config-dir DIR] [--dry-run]
    python install_plugin.py [--config-dir DIR] [--uninstall] [--dry-run]   # the same, from a checkout

What ``install`` does (default config dir: ``~/.phy``, the same as
``phylib.utils._misc.phy_config_dir()``):

1. writes ``<config>/plugins/phy_bcreason_loader.py``. Phy executes every ``*.py``
   file found in ``c.Plugins.dirs`` (``phy.utils.plugin.discover_plugins``); the loader
   imports ``phy_bcreason.plugin.BombcellReasonPlugin`` from wherever the package is installed
   (site-packages, an editable install, the user site), and defining that ``IPlugin``
   subclass registers it in Phy's plugin registry;
2. appends a marked block to ``<config>/phy_config.py`` (creating the file from Phy's
   default template when it is absent) that puts the plugins folder in ``c.Plugins.dirs``
   and ``'BombcellReasonPlugin'`` in ``c.TemplateGUI.plugins``, keeping whatever the
   user's file already sets. The original file is first copied to
   ``phy_config.py.bcreason-backup``.

``uninstall`` undoes both steps; ``--dry-run`` only prints what would be done. Then it says whether the
Python that runs ``phy`` can import the package. Only the standard library is used, and this module imports
nothing of the package: ``install_plugin.py`` runs it from a checkout before the package is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PLUGIN_CLASS = "BombcellReasonPlugin"
PACKAGE = "phy_bcreason"
LOADER_NAME = "phy_bcreason_loader.py"
CONFIG_NAME = "phy_config.py"
BACKUP_SUFFIX = ".bcreason-backup"
BEGIN_MARKER = "# >>> phy-bcreason >>>"
END_MARKER = "# <<< phy-bcreason <<<"
LOADER_MARKER = "# phy-bcreason loader, installed by install_plugin.py"  # unchanged: uninstall recognises it


class InstallError(Exception):
    """An error reported to the user as one line, exit status 2."""


# ------------------------------------------------------------------------------
# Paths and file contents
# ------------------------------------------------------------------------------


def default_config_dir() -> Path:
    """Phy's user config directory (``phylib.utils._misc.phy_config_dir()``)."""
    return Path.home() / ".phy"


def _norm_dir(config_dir) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(config_dir))))


def _py_str(s: str) -> str:
    """A Python literal for the string ``s``: a readable raw string when possible."""
    if "'" not in s and "\n" not in s and not s.endswith("\\"):
        return f"r'{s}'"
    return repr(s)


def phy_default_config(config_dir: Path) -> str:
    """The text Phy writes when ``phy_config.py`` is missing (``phy.utils.config._default_config``)."""
    path = config_dir / "plugins"
    return (
        "\n"
        "# You can also put your plugins in ~/.phy/plugins/.\n"
        "\n"
        "from phy import IPlugin\n"
        "\n"
        "# Plugin example:\n"
        "#\n"
        "# class MyPlugin(IPlugin):\n"
        "#     def attach_to_cli(self, cli):\n"
        "#         # you can create phy subcommands here with click\n"
        "#         pass\n"
        "\n"
        "c = get_config()\n"
        f"c.Plugins.dirs = [{_py_str(str(path))}]\n"
    )


def loader_text() -> str:
    return (
        f"{LOADER_MARKER} (phy-bcreason).\n"
        "# Phy runs every *.py file in c.Plugins.dirs at startup; importing the class below\n"
        "# registers it as a Phy plugin, and the 'phy-bcreason' block in phy_config.py enables\n"
        "# it in the template GUI (c.TemplateGUI.plugins).\n"
        "# To remove: phy-bcreason uninstall-plugin  (or python install_plugin.py --uninstall,\n"
        "# or delete this file and that block).\n"
        "try:\n"
        f"    from {PACKAGE}.plugin import {PLUGIN_CLASS}  # noqa: F401\n"
        "except ModuleNotFoundError as e:\n"
        f"    if e.name not in ('{PACKAGE}', '{PACKAGE}.plugin'):\n"
        "        raise\n"
        "    import logging\n"
        "\n"
        "    logging.getLogger('phy').warning(\n"
        f"        'phy-bcreason: the {PACKAGE} package is not installed in the Python that runs phy; '\n"
        "        'pip install it there, or remove the plugin: delete %s and the phy-bcreason block of '\n"
        "        'phy_config.py', __file__)\n"
    )


def config_block(plugins_dir: Path, nl: str = "\n") -> str:
    """The marked block appended to ``phy_config.py``.

    Reading an unset ``c.X.y`` from a traitlets ``Config`` gives a (truthy) ``LazyConfigValue``,
    and ``c.X.y.append(...)`` also leaves one there, so the block materialises it with
    ``get_value([])`` and otherwise only trusts real lists/tuples.
    """
    lines = [
        f"{BEGIN_MARKER}  (added by phy-bcreason install-plugin; remove with: phy-bcreason uninstall-plugin)",
        "def _phy_bcreason_add(section, name, item, key=lambda x: x):",
        "    value = section[name] if name in section else []",
        "    if hasattr(value, 'get_value'):  # traitlets LazyConfigValue",
        "        value = value.get_value([])",
        "    value = list(value) if isinstance(value, (list, tuple)) else []",
        "    if key(item) not in [key(v) for v in value]:",
        "        value.append(item)",
        "    section[name] = value",
        "",
        "",
        "def _phy_bcreason_dir(p):",
        "    import os",
        "",
        "    return os.path.normcase(os.path.abspath(os.path.expanduser(str(p))))",
        "",
        "",
        "c = get_config()",
        f"_phy_bcreason_add(c.Plugins, 'dirs', {_py_str(str(plugins_dir))}, _phy_bcreason_dir)",
        f"_phy_bcreason_add(c.TemplateGUI, 'plugins', '{PLUGIN_CLASS}')",
        "del _phy_bcreason_add, _phy_bcreason_dir",
        END_MARKER,
    ]
    return nl.join(lines) + nl


def _find_blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the marked blocks, end marker line included."""
    spans = []
    lines = text.splitlines(keepends=True)
    pos, start = 0, None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(BEGIN_MARKER):
            if start is not None:
                raise InstallError("phy_config.py has a phy-bcreason begin marker without an end marker")
            start = pos
        elif stripped == END_MARKER:
            if start is None:
                raise InstallError("phy_config.py has a phy-bcreason end marker without a begin marker")
            spans.append((start, pos + len(line)))
            start = None
        pos += len(line)
    if start is not None:
        raise InstallError("phy_config.py has a phy-bcreason begin marker without an end marker")
    return spans


def _strip_blocks(text: str) -> str:
    for start, end in reversed(_find_blocks(text)):
        text = text[:start] + text[end:]
    return text


# ------------------------------------------------------------------------------
# File helpers
# ------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InstallError(f"{path} is not UTF-8 text ({e.reason}); not touching it") from None


def _write_bytes(path: Path, data: bytes) -> None:
    """Write atomically (temp file + rename) so a failure never leaves a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _check_dir(path: Path, what: str) -> None:
    if path.exists() and not path.is_dir():
        raise InstallError(f"{what} {path} exists but is not a directory")


def _check_file(path: Path, what: str) -> None:
    if path.exists() and not path.is_file():
        raise InstallError(f"{what} {path} exists but is not a regular file")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _check_writable(path: Path) -> None:
    """Fail early (also in dry-run) when the target cannot be written."""
    existing = _nearest_existing(path)
    if existing.exists() and not existing.is_dir():
        raise InstallError(f"{existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InstallError(f"{existing} is not writable")


def _paths(config_dir: Path):
    config_dir = _norm_dir(config_dir)
    plugins_dir = config_dir / "plugins"
    return (
        config_dir,
        plugins_dir,
        plugins_dir / LOADER_NAME,
        config_dir / CONFIG_NAME,
        config_dir / (CONFIG_NAME + BACKUP_SUFFIX),
    )


# ------------------------------------------------------------------------------
# Install / uninstall
# ------------------------------------------------------------------------------


def install(config_dir: Path, dry_run: bool = False) -> list[str]:
    """Install the loader and the phy_config.py block; return one line per action."""
    config_dir, plugins_dir, loader, config, backup = _paths(config_dir)
    pre = "[dry-run] would " if dry_run else ""
    actions: list[str] = []

    _check_dir(config_dir, "config dir")
    _check_dir(plugins_dir, "plugins dir")
    _check_file(loader, "loader")
    _check_file(config, "config file")
    _check_file(backup, "backup")
    _check_writable(config_dir)
    if plugins_dir.exists():
        _check_writable(plugins_dir)

    # 1. Loader.
    if not config_dir.exists():
        actions.append(f"{pre}create config dir {config_dir}")
        if not dry_run:
            config_dir.mkdir(parents=True)
    if not plugins_dir.exists():
        actions.append(f"{pre}create plugins dir {plugins_dir}")
        if not dry_run:
            plugins_dir.mkdir()
    wanted_loader = loader_text().encode("utf-8")
    if loader.exists() and loader.read_bytes() == wanted_loader:
        actions.append(f"loader already installed: {loader}")
    else:
        verb = "update" if loader.exists() else "write"
        actions.append(f"{pre}{verb} loader {loader}")
        if not dry_run:
            _write_bytes(loader, wanted_loader)

    # 2. phy_config.py block.
    if config.exists():
        text = _read_text(config)
        nl = "\r\n" if "\r\n" in text else "\n"
        block = config_block(plugins_dir, nl)
        spans = _find_blocks(text)
        if len(spans) == 1 and text[spans[0][0]:spans[0][1]] == block:
            actions.append(f"config block already present in {config}")
            return actions
        if not spans and not backup.exists():
            actions.append(f"{pre}back up {config} to {backup}")
            if not dry_run:
                _write_bytes(backup, config.read_bytes())
        if spans:
            actions.append(f"{pre}replace phy-bcreason block in {config}")
            start = spans[0][0]
            new_text = text[:start] + block + _strip_blocks(text[start:])
        else:
            actions.append(f"{pre}append phy-bcreason block to {config}")
            new_text = text
            if new_text and not new_text.endswith("\n"):
                new_text += nl
            new_text += block
    else:
        actions.append(f"{pre}create {config} (Phy's default config + phy-bcreason block)")
        new_text = phy_default_config(config_dir) + config_block(plugins_dir)
    if not dry_run:
        _write_bytes(config, new_text.encode("utf-8"))
    return actions


def uninstall(config_dir: Path, dry_run: bool = False) -> list[str]:
    """Remove the loader and the phy_config.py block; return one line per action."""
    config_dir, plugins_dir, loader, config, backup = _paths(config_dir)
    pre = "[dry-run] would " if dry_run else ""
    actions: list[str] = []

    _check_dir(config_dir, "config dir")
    _check_file(config, "config file")
    if not config_dir.exists():
        return [f"nothing to uninstall: {config_dir} does not exist"]
    _check_writable(config_dir)

    # 1. Loader (only ours).
    if loader.is_file():
        if LOADER_MARKER in _read_text(loader):
            _check_writable(plugins_dir)
            actions.append(f"{pre}remove loader {loader}")
            if not dry_run:
                loader.unlink()
        else:
            actions.append(f"leave {loader}: it was not written by the phy-bcreason installer")
    else:
        actions.append(f"no loader to remove at {loader}")

    # 2. phy_config.py.
    if not config.exists():
        actions.append(f"no {CONFIG_NAME} in {config_dir}")
        if backup.is_file():
            actions.append(f"{pre}restore {config} from {backup}")
            if not dry_run:
                os.replace(backup, config)
        return actions

    text = _read_text(config)
    spans = _find_blocks(text)
    stripped = _strip_blocks(text)
    if backup.is_file():
        original = backup.read_bytes()
        original_text = original.decode("utf-8", errors="replace")
        if not spans:
            # Our block is already gone: never overwrite the user's current file with the backup.
            if original == text.encode("utf-8"):
                actions.append(f"{pre}remove {backup} (identical to {config})")
                if not dry_run:
                    backup.unlink()
            else:
                actions.append(f"no phy-bcreason block in {config}; leaving it and {backup} as they are")
            return actions
        if stripped.rstrip() == original_text.rstrip():
            # Unchanged since install (apart from our block): put the original back byte for byte.
            actions.append(f"{pre}restore {config} from {backup}")
            if not dry_run:
                _write_bytes(config, original)
                backup.unlink()
            return actions
        # The user edited the file after installing: keep their edits, drop only our block.
        actions.append(f"{pre}remove phy-bcreason block from {config} (file edited since install)")
        actions.append(f"keep {backup} (it predates those edits)")
        if not dry_run:
            _write_bytes(config, stripped.encode("utf-8"))
        return actions

    if not spans:
        actions.append(f"no phy-bcreason block in {config}")
        return actions
    if not stripped.strip() or stripped.strip() == phy_default_config(config_dir).strip():
        # Created by install() (or Phy's untouched default, which Phy recreates when missing).
        actions.append(f"{pre}delete {config} (created by the phy-bcreason installer)")
        if not dry_run:
            config.unlink()
    else:
        actions.append(f"{pre}remove phy-bcreason block from {config}")
        if not dry_run:
            _write_bytes(config, stripped.encode("utf-8"))
    return actions


# ------------------------------------------------------------------------------
# Is the package importable by the Python that runs phy?
# ------------------------------------------------------------------------------

# Shared by the script below and this module (tested here with ntpath and nturl2path, as Windows runs them):
# whether a package folder is inside a folder (any case on Windows; never raising across drives), and the
# local path of a file:// URL (file:///C:/x is C:\\x on Windows, not /C:/x).
_HELPERS = r"""
def inside_folder(package, folder, path=None):
    import os
    path = path or os.path
    try:
        package, folder = path.normcase(path.realpath(package)), path.normcase(path.realpath(folder))
        return bool(package) and path.commonpath([package, folder]) == folder
    except ValueError:  # other drives (Windows), or a relative and an absolute path
        return False
def url_path(url, url2pathname=None):
    from urllib.parse import urlparse
    if url2pathname is None:
        from urllib.request import url2pathname
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return ""
    return url2pathname(("//" + parsed.netloc if parsed.netloc not in ("", "localhost") else "") + parsed.path)
"""
_helpers: dict = {}
exec(_HELPERS, _helpers)
inside_folder, url_path = _helpers["inside_folder"], _helpers["url_path"]

# Run by that Python, from a neutral folder: `find_spec` sees every kind of install, since editable installs
# are found through a meta-path finder (not a sys.path entry), user installs through the user site.
_FIND_SCRIPT = _HELPERS + r"""
import importlib.util, json, os, site, sys
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]  # `phy` does not run from the current folder
def where(name):
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        return None
    if spec is None:
        return None
    return os.path.dirname(spec.origin) if spec.origin else next(iter(spec.submodule_search_locations or []), "")
found = {"python": sys.executable, "package": where(sys.argv[1]), "phy": where("phy"), "kind": "", "version": ""}
def inside(folder):
    return bool(found["package"]) and inside_folder(found["package"], folder)
try:
    import importlib.metadata as md
    dist = md.distribution(sys.argv[2])
    found["version"] = dist.version
    url = json.loads(dist.read_text("direct_url.json") or "{}")
    if url.get("dir_info", {}).get("editable") and inside(url_path(url.get("url", ""))):
        found["kind"] = "editable"
except Exception:
    pass
try:
    if not found["kind"] and inside(site.getusersitepackages()):
        found["kind"] = "user"
    if not found["kind"] and any(inside(p) for p in site.getsitepackages()):
        found["kind"] = "site"
except Exception:
    pass
if found["package"] and not found["kind"]:
    found["kind"] = "path"
print(json.dumps(found))
"""


def _shebang_python(line: str) -> str | None:
    """The interpreter a ``#!`` line names (``#!/usr/bin/env python3``, ``#!"C:\\Program Files\\...\\python.exe"``),
    if it is a Python that exists."""
    rest = line[2:].strip()
    words = [rest[1:].split('"', 1)[0]] if rest.startswith('"') else rest.split()
    if words and os.path.basename(words[0]) == "env" and len(words) > 1:
        words = [shutil.which(words[1]) or words[1], *words[2:]]
    if words and os.path.basename(words[0]).lower().startswith("python") and os.path.isfile(words[0]):
        return words[0]
    return None


# pip's shim on POSIX when the interpreter's path has spaces: `#!/bin/sh`, then this line
_SH_SHIM = re.compile(r"""^'''exec' (?:"([^"]+)"|(\S+)) "\$0" "\$@"\s*$""")
# uv's relocatable shim (the scripts of its cached environments, `uv tool run`): the python beside the real script
_UV_SH_SHIM = re.compile(r"""^'''exec' "\$\(dirname -- "\$\(realpath -- "\$0"\)"\)"/'([^'/]+)' "\$0" "\$@"\s*$""")
# uv's Windows trampoline ends with the interpreter's path, its length (u32, little-endian) and a magic number
_UV_MAGICS = (b"UVUV", b"UVSC", b"UVPY")


def _launcher_python(data: bytes) -> str | None:
    """What a Windows console-script launcher (``phy.exe``) says it starts, from the bytes appended to it: uv's
    trampoline puts the interpreter's path at the very end (returned as is); pip's (distlib) puts a ``#!`` line
    between the launcher and its zip archive (returned as that line)."""
    if len(data) > 12 and data[-4:] in _UV_MAGICS:
        size = int.from_bytes(data[-8:-4], "little")
        if 0 < size <= len(data) - 8:
            return data[-8 - size:-8].decode("utf-8", "replace")
    archive = data.rfind(b"PK\x03\x04")   # the zip's one local header (the central directory's are PK\x01\x02)
    shebang = data.rfind(b"#!", 0, archive if archive > 0 else len(data))
    if shebang < 0:
        return None
    return data[shebang:].split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")


def _script_python(script: str) -> str | None:
    """The Python interpreter a console script (``phy``) starts: read from its ``#!`` line, from pip's ``/bin/sh``
    shim (an interpreter path with spaces), or from a Windows launcher (``phy.exe`` has no ``#!`` line: the path
    is appended inside); None if none names an existing Python (a pyenv shim, a launcher of unknown make)."""
    try:
        with open(script, "rb") as f:
            head = f.read(4096)
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 262144))
            tail = f.read()   # a launcher's appended part: its interpreter and a small zip
    except OSError:
        return None
    lines = head.decode("utf-8", "replace").splitlines()
    first = lines[0].strip() if lines else ""
    if first.startswith("#!"):
        if first[2:].strip() in ("/bin/sh", "/usr/bin/env sh") and len(lines) > 1:
            match = _SH_SHIM.match(lines[1].strip())
            if match and os.path.isfile(match.group(1) or match.group(2)):
                return match.group(1) or match.group(2)
            match = _UV_SH_SHIM.match(lines[1].strip())
            if match:
                beside = os.path.join(os.path.dirname(os.path.realpath(script)), match.group(1))
                if os.path.isfile(beside):
                    return beside
        return _shebang_python(first)
    if head.startswith(b"MZ"):   # a Windows executable
        found = _launcher_python(tail)
        if found and found.startswith("#!"):
            return _shebang_python(found)
        if found and os.path.isfile(found):
            return found
    return None


def phy_python() -> tuple[str, str]:
    """(interpreter, how it was found): the Python that the ``phy`` command on PATH runs, else this one. When a
    Windows launcher's own interpreter cannot be read, the ``python.exe`` beside ``phy.exe`` (a venv's or
    conda's ``Scripts\\``)."""
    phy = shutil.which("phy")
    python = _script_python(phy) if phy else None
    if python:
        return python, f"the Python of {phy}"
    if phy:
        beside = os.path.join(os.path.dirname(phy), "python.exe")
        if phy.lower().endswith(".exe") and os.path.isfile(beside):
            return beside, f"the python.exe beside {phy}"
        return sys.executable, f"this Python ({phy} does not name its Python)"
    return sys.executable, "this Python (no phy command on PATH)"


def shell_quote(words: list[str], windows: bool | None = None) -> str:
    """A command line to paste into the user's shell: POSIX quoting; on Windows, double quotes around words with
    spaces (cmd.exe), and the PowerShell form in parentheses, which needs ``&`` before a quoted program."""
    windows = os.name == "nt" if windows is None else windows
    if not windows:
        return shlex.join(words)
    line = " ".join(f'"{w}"' if not w or re.search(r"[\s&()^%!;,']", w) else w for w in words)
    return f"{line} (in PowerShell: & {line})" if line.startswith('"') else line


def find_package(python: str | None = None, timeout: float = 60) -> dict:
    """Where ``python`` (default: the one phy runs) would import phy_bcreason and phy from: ``{"python",
    "package", "phy", "kind" ('editable', 'user', 'site', 'path'), "version", "how"}``; ``package`` and ``phy``
    are None when not importable. ``error`` is set when ``python`` could not be asked."""
    how = "given"
    if python is None:
        python, how = phy_python()
    found = {"python": python, "how": how, "package": None, "phy": None, "kind": "", "version": ""}
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    try:
        res = subprocess.run([python, "-c", _FIND_SCRIPT, PACKAGE, "phy-bcreason"], capture_output=True, text=True,
                             timeout=timeout, cwd=tempfile.gettempdir(), env=env, stdin=subprocess.DEVNULL)
        found.update(json.loads(res.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        found["error"] = f"{type(exc).__name__}: {exc}"
    return found


def uv_ephemeral(python: str, cache_dir: str | None = None) -> bool:
    """Whether ``python`` is that of an environment in uv's cache (``uv tool run``, ``uvx``: ``<cache>/archive-v0/
    <hash>/bin/python``), which uv may replace or remove (``uv cache clean``, ``prune``), unlike those of
    ``uv tool install``. ``cache_dir``: default ``UV_CACHE_DIR`` when set."""
    cache_dir = cache_dir if cache_dir is not None else os.environ.get("UV_CACHE_DIR", "")
    parts = Path(os.path.abspath(python)).parts
    if any(re.fullmatch(r"(archive|environments|builds)-v\d+", part) for part in parts[:-1]):
        return True
    return bool(cache_dir) and inside_folder(python, cache_dir)


def package_report(found: dict | None = None) -> list[str]:
    """One line saying whether the Python that runs phy will find the package (``note:`` lines when not)."""
    found = found if found is not None else find_package()
    python = found["python"]
    if found.get("error"):
        return [f"note: could not ask {python} whether it can import {PACKAGE} ({found['error']})"]
    lines = []
    if found["package"]:
        kind = {"editable": "editable install of", "user": "user install in", "site": "installed in",
                "path": "found through sys.path (PYTHONPATH?) at"}.get(found["kind"], "found at")
        version = f" {found['version']}" if found["version"] else ""
        lines.append(f"{PACKAGE}{version} will be loaded by {python} ({found['how']}): {kind} {found['package']}")
    else:
        pip = shell_quote([python, "-m", "pip", "install", "phy-bcreason"])
        lines.append(f"note: {PACKAGE} is not installed in {python} ({found['how']}); install it there: "
                     f"{pip} (or -e /path/to/phy-bcreason)")
    if not found["phy"]:
        lines.append(f"note: phy is not installed in {python} either")
    if uv_ephemeral(python):
        lines.append(f"note: {python} is a temporary environment in uv's cache (uv tool run, uvx): uv may remove "
                     "it, and a `phy` started elsewhere runs another Python; for a lasting install: uv tool install "
                     "phy --with phy-bcreason --with-executables-from phy-bcreason, then phy-bcreason install-plugin")
    return lines


# ------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------


def run(uninstall_plugin: bool, config_dir=None, dry_run: bool = False, prog: str = "phy-bcreason",
        check_package: bool = True) -> int:
    """Install or uninstall and print what was done (errors: one line on stderr, status 2)."""
    config_dir = config_dir if config_dir is not None else default_config_dir()
    try:
        if uninstall_plugin:
            actions = uninstall(config_dir, dry_run=dry_run)
        else:
            actions = install(config_dir, dry_run=dry_run)
    except (InstallError, OSError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    for line in actions:
        print(line)
    if not uninstall_plugin and check_package:
        for line in package_report():
            print(line)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", type=Path, default=None, help="Phy config directory (default: ~/.phy)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be done, write nothing")


def console_safe() -> None:
    """Let stdout and stderr print any text on any console: a redirected Windows stream encodes in the ANSI code
    page (cp1252, cp932...), where µ, ±, ✓ raise UnicodeEncodeError; unencodable characters become ``?``
    instead. The encoding is kept (PYTHONIOENCODING, PYTHONUTF8 and the console's own still decide it)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError, OSError):   # None (pythonw), or not a TextIOWrapper
            pass


def main(argv=None) -> int:
    """``python install_plugin.py [--config-dir DIR] [--uninstall] [--dry-run]``"""
    console_safe()
    parser = argparse.ArgumentParser(
        prog="install_plugin.py",
        description="Enable (or remove) the phy-bcreason plugin in Phy's user config "
                    "(the same as `phy-bcreason install-plugin` / `uninstall-plugin`).",
    )
    add_arguments(parser)
    parser.add_argument("--uninstall", action="store_true", help="remove the plugin instead")
    args = parser.parse_args(argv)
    return run(args.uninstall, args.config_dir, args.dry_run, prog="install_plugin.py")


if __name__ == "__main__":
    sys.exit(main())
