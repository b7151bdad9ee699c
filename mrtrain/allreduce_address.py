"""The address the AllReduce driver listens on when ``allreduce_address`` is not given.

The map tasks connect to the driver, so it must listen on an address their machines reach. On the local
runner they run on this machine: ``127.0.0.1``. On the hadoop runner they run on the NodeManagers, which
reach the ResourceManager: the driver takes the address of this host that routes to the ResourceManager
(the web address :mod:`mrtrain.yarn_capacity` asks, from the Hadoop configuration's site files), found by
``connect()`` of a UDP socket to it and ``getsockname()``; no packet is sent. On the single-machine cluster
that is ``127.0.0.1``; on a compose network or a real cluster the client's address there. When the
ResourceManager's address cannot be found or resolved: ``127.0.0.1``, with a warning saying why and what to
pass.
"""

import logging
import socket
from urllib.parse import urlsplit

from mrtrain.storage.hdfs_fs import hadoop_conf_dir
from mrtrain.yarn_capacity import resource_manager_urls, site_properties

log = logging.getLogger(__name__)

#: The address for the local runner, and the hadoop runner's fallback.
LOOPBACK = "127.0.0.1"


def address_toward(host, port):
    """The address of this host that routes to ``host``:``port`` (a UDP ``connect``; nothing is sent).

    Raises
    ------
    OSError
        When ``host`` does not resolve or no route leads to it.
    """
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(sockaddr)
        return probe.getsockname()[0]


def resource_manager_address():
    """``(host, port)`` of the ResourceManager the ``hadoop`` command uses (its web address; the first of
    several with HA).

    Raises
    ------
    OSError
        When the Hadoop configuration directory is not set or names no ResourceManager.
    ValueError
        When a site file is not XML.
    """
    conf_dir = hadoop_conf_dir()
    if not conf_dir:
        raise OSError("neither HADOOP_CONF_DIR nor HADOOP_HOME is set")
    urls = resource_manager_urls(site_properties(conf_dir))
    if not urls:
        raise OSError("no yarn.resourcemanager.webapp.address or yarn.resourcemanager.hostname in "
                      f"{conf_dir}")
    parts = urlsplit(urls[0])
    return parts.hostname, parts.port or 8088


def default_address(runner):
    """The ``allreduce_address`` when none is given (module docstring): ``HOST`` (port 0: any free port).

    Parameters
    ----------
    runner : {"local", "hadoop"}
    """
    if runner != "hadoop":
        return LOOPBACK
    try:
        host, port = resource_manager_address()
        address = address_toward(host, port)
    except (OSError, ValueError, UnicodeError) as error:
        log.warning("allreduce: listening on %s: could not find this host's address toward the "
                    "ResourceManager (%s); if the map tasks cannot reach it, pass --allreduce-address with "
                    "an address of this host that the NodeManagers reach", LOOPBACK, error)
        return LOOPBACK
    log.info("allreduce: listening on %s, this host's address toward the ResourceManager at %s:%d",
             address, host, port)
    return f"[{address}]" if ":" in address else address
