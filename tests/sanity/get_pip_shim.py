"""Stand-in for the get-pip.py that ansible-test downloads from ci-files.testing.ansible.com.

That host is not reachable from our machines; this shim gives ansible-test the same
result: pip bootstrapped from the interpreter's own ensurepip, then upgraded to the
version ansible-test asked for (its arguments are those of get-pip.py) from PyPI.
"""

import subprocess
import sys

# get-pip.py options that `pip install` does not know.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

subprocess.check_call(
    [sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL
)
args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
