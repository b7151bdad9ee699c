"""Print the Python requirements of mrtrain's map and reduce tasks: setup.cfg's ``install_requires``.

The image installs exactly these (``pip install -r``), so the list has one source, setup.cfg; the docker
tests check that the image's Python satisfies every line. With ``--build``, also pyproject.toml's
``[build-system] requires`` (to install mrtrain itself without fetching them again).

Usage: python3 requirements.py [--build] path/to/setup.cfg
"""

import configparser
import sys
import tomllib
from pathlib import Path


def install_requires(setup_cfg):
    """The ``[options] install_requires`` lines of ``setup_cfg``, environment markers kept."""
    parser = configparser.ConfigParser()
    with open(setup_cfg, encoding="utf-8") as f:
        parser.read_file(f)
    lines = parser["options"]["install_requires"].splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def build_requires(pyproject):
    """The ``[build-system] requires`` of ``pyproject``."""
    with open(pyproject, "rb") as f:
        return list(tomllib.load(f)["build-system"]["requires"])


if __name__ == "__main__":
    setup_cfg = Path(sys.argv[-1])
    lines = install_requires(setup_cfg)
    if "--build" in sys.argv[1:-1]:
        lines += build_requires(setup_cfg.with_name("pyproject.toml"))
    print("\n".join(lines))
