"""
bitp2p's tests. Under trial (which reads no conftest.py), the per-user
folders where a node keeps its default data directory are pointed once, for
the whole run, at a temporary folder removed at exit: no test writes in the
real home. Under pytest, C{tests/conftest.py} gives each test its own.
"""

import atexit
import os
import shutil
import sys
import tempfile

_folder = tempfile.mkdtemp(prefix="bitp2p-tests-")
atexit.register(shutil.rmtree, _folder, ignore_errors=True)
os.environ["XDG_DATA_HOME"] = os.path.join(_folder, "xdg")
os.environ["LOCALAPPDATA"] = os.path.join(_folder, "local")
if sys.platform == "darwin":
    os.environ["HOME"] = _folder
