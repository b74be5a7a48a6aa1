"""Stand-in for ansible-test's pip bootstrap script, which it downloads from a host this machine cannot reach.

ansible-test runs it with the venv's python and get-pip.py's arguments (pip options and the packages
to install, pip==<version> first). It installs the pip bundled with CPython (ensurepip), then lets that
pip install what was asked for from the package index that is reachable.
"""
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
os.environ.pop("PIP_CONFIG_FILE", None)  # ensurepip sets it to /dev/null; the machine's pip.conf is wanted now
# get-pip.py's own options, which pip install does not know.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade"] + args))
