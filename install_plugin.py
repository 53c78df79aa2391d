#!/usr/bin/env python
"""Register (or remove) the phy-bcreason plugin in Phy's user configuration, from a checkout.

    python install_plugin.py [--config-dir DIR] [--uninstall] [--dry-run]

The same as ``phy-bcreason install-plugin`` / ``phy-bcreason uninstall-plugin`` (the code is the package's
``phy_bcreason/install.py``). It is loaded here by its path, without importing the package, so this runs
with the standard library alone, before phy-bcreason is installed.
"""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "phy_bcreason_install", Path(__file__).resolve().parent / "phy_bcreason" / "install.py")
_install = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _install
_spec.loader.exec_module(_install)

# the installer's names, for scripts that load this file as a module
globals().update({name: getattr(_install, name) for name in dir(_install) if not name.startswith("__")})

if __name__ == "__main__":
    sys.exit(_install.main())
