"""How many map tasks a YARN cluster can run at once for one new job: the AllReduce gang's size.

Every task of an AllReduce job (:mod:`mrtrain.allreduce`) must hold a container at the same time,
next to the job's application master. :func:`read_capacity` asks the ResourceManager what is free and
:func:`map_slots` turns that into a task count:

- **Where.** The ResourceManager's web address is ``yarn.resourcemanager.webapp.address`` in the
  ``yarn-site.xml`` of the Hadoop configuration directory the ``hadoop`` command uses (``$HADOOP_CONF_DIR``,
  else ``$HADOOP_HOME/etc/hadoop``; :func:`mrtrain.storage.hdfs_fs.hadoop_conf_dir`), else
  ``yarn.resourcemanager.hostname`` and port 8088, Hadoop's default; with ResourceManager HA, the
  ``.<rm-id>`` address of every id in ``yarn.resourcemanager.ha.rm-ids``, in order.
- **What.** The REST API: ``/ws/v1/cluster/metrics`` (available and total memory and vcores),
  ``/ws/v1/cluster/nodes`` (what is free on each running node: containers do not span nodes) and
  ``/ws/v1/cluster/scheduler`` (the capacity scheduler's limit for the job's queue). A ResourceManager that
  does not serve the REST API — Hadoop's single-JVM mini cluster, where the NodeManager's web services
  take over the shared web container — is read through its JMX servlet instead (``/jmx``: the
  ``QueueMetrics`` of the root and of the job's queue).
- **Sizes.** A map container is ``mapreduce.map.memory.mb`` (Hadoop's default 1024) and
  ``mapreduce.map.cpu.vcores`` (1), the application master ``yarn.app.mapreduce.am.resource.mb`` (1536)
  and ``yarn.app.mapreduce.am.resource.cpu-vcores`` (1), each rounded up to the scheduler's
  ``yarn.scheduler.minimum-allocation-mb`` (1024) and ``-vcores`` (1), as the scheduler does. The job's own
  settings are the job class's ``JOBCONF``, then the mrjob config's ``jobconf`` for the hadoop runner,
  then ``mapred-site.xml`` / ``yarn-site.xml``; the queue is ``mapreduce.job.queuename`` (``default``).

Vcores count even where the scheduler allocates by memory alone (the capacity scheduler's default): a
gang sized a little small still runs, one sized too large waits for slots that never come.
"""

import json
import logging
import math
import os
import re
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from mrtrain.storage.hdfs_fs import hadoop_conf_dir

log = logging.getLogger(__name__)

#: Seconds to wait for each answer of the ResourceManager.
HTTP_TIMEOUT = 5.0
#: Largest answer read from the ResourceManager.
MAX_ANSWER_BYTES = 16 * 2**20
#: Hadoop's defaults for what a container asks and what the scheduler rounds up to.
DEFAULTS = {
    "mapreduce.map.memory.mb": 1024,
    "mapreduce.map.cpu.vcores": 1,
    "yarn.app.mapreduce.am.resource.mb": 1536,
    "yarn.app.mapreduce.am.resource.cpu-vcores": 1,
    "yarn.scheduler.minimum-allocation-mb": 1024,
    "yarn.scheduler.minimum-allocation-vcores": 1,
}
_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class Resources:
    """Memory (MB) and vcores."""

    mb: int
    vcores: int

    def fits(self, container):
        """How many ``container`` s fit (0 if none)."""
        return max(0, min(self.mb // container.mb, self.vcores // container.vcores))


@dataclass(frozen=True)
class Capacity:
    """What a ResourceManager said is free for a new job.

    Attributes
    ----------
    source : str
        The URL that answered.
    available : Resources
        Free in the cluster (and within the queue's limit).
    total : Resources
        The cluster's total.
    nodes : tuple of Resources or None
        Free on each running node, when the ResourceManager lists them.
    """

    source: str
    available: Resources
    total: Resources
    nodes: tuple = None


def site_properties(conf_dir):
    """``{name: value}`` of the ``core``, ``yarn`` and ``mapred`` site files in ``conf_dir`` (missing: empty).

    ``${name}`` references are expanded from the same files. A file that is not XML raises ValueError
    naming it.
    """
    values = {}
    for name in ("core-site.xml", "yarn-site.xml", "mapred-site.xml"):
        path = os.path.join(conf_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as error:
            raise ValueError(f"{path}: not valid XML: {error}") from None
        for prop in root.iter("property"):
            key = (prop.findtext("name") or "").strip()
            if key:
                values[key] = (prop.findtext("value") or "").strip()

    def expand(text, depth=0):
        if depth > 10:
            return text
        return _VARIABLE.sub(
            lambda match: expand(values.get(match.group(1), match.group(0)), depth + 1), text
        )

    return {key: expand(value) for key, value in values.items()}


def resource_manager_urls(properties):
    """The ResourceManager web URLs to ask, in order (several with HA), from the site properties."""
    ids = [i.strip() for i in properties.get("yarn.resourcemanager.ha.rm-ids", "").split(",") if i.strip()]
    addresses = []
    for suffix in [f".{i}" for i in ids] or [""]:
        address = properties.get(f"yarn.resourcemanager.webapp.address{suffix}")
        host = properties.get(f"yarn.resourcemanager.hostname{suffix}")
        if not address and host:
            address = f"{host}:8088"
        if address:
            host, _, port = address.rpartition(":")
            if host in ("", "0.0.0.0"):
                host = properties.get(f"yarn.resourcemanager.hostname{suffix}") or "127.0.0.1"
            addresses.append(f"http://{host}:{port}")
    return addresses


def job_setting(name, properties, jobconf):
    """A positive int setting of the job: its ``jobconf``, else the site properties, else Hadoop's default.

    Raises
    ------
    ValueError
        If the value is not an int >= 1, naming the setting and where it came from.
    """
    where, value = ("the job's jobconf", jobconf[name]) if name in jobconf else (
        ("the Hadoop configuration", properties[name]) if name in properties else ("", DEFAULTS[name]))
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{name} in {where} must be an int >= 1. Got {value!r} instead.")
    return number


def container_sizes(properties, jobconf):
    """``(map container, application master container)`` as the scheduler allocates them."""
    minimum = Resources(job_setting("yarn.scheduler.minimum-allocation-mb", properties, {}),
                        job_setting("yarn.scheduler.minimum-allocation-vcores", properties, {}))

    def rounded(mb, vcores):
        return Resources(math.ceil(mb / minimum.mb) * minimum.mb, max(vcores, minimum.vcores))

    task = rounded(job_setting("mapreduce.map.memory.mb", properties, jobconf),
                   job_setting("mapreduce.map.cpu.vcores", properties, jobconf))
    master = rounded(job_setting("yarn.app.mapreduce.am.resource.mb", properties, jobconf),
                     job_setting("yarn.app.mapreduce.am.resource.cpu-vcores", properties, jobconf))
    return task, master


def map_slots(capacity, task, master):
    """Map containers of size ``task`` that fit at once next to one application master of size ``master``.

    With per-node figures the master goes on the node where it costs the fewest map containers and every
    node counts whole containers; otherwise the cluster's free total counts, less the master.
    """
    if capacity.nodes:
        per_node = [node.fits(task) for node in capacity.nodes]
        best = None
        for i, node in enumerate(capacity.nodes):
            if node.fits(master):
                rest = Resources(node.mb - master.mb, node.vcores - master.vcores)
                slots = sum(per_node) - per_node[i] + rest.fits(task)
                best = slots if best is None else max(best, slots)
        slots = best or 0
        free = Resources(capacity.available.mb - master.mb, capacity.available.vcores - master.vcores)
        return min(slots, free.fits(task))
    free = Resources(capacity.available.mb - master.mb, capacity.available.vcores - master.vcores)
    return free.fits(task)


def _get_json(url):
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:
        body = answer.read(MAX_ANSWER_BYTES + 1)
    if len(body) > MAX_ANSWER_BYTES:
        raise ValueError(f"{url}: answer larger than {MAX_ANSWER_BYTES} bytes")
    return json.loads(body)


def _queue_limit(scheduler, queue, total):
    """Free resources within the capacity scheduler queue ``queue`` (leaf name), or None if not known."""
    info = scheduler.get("scheduler", {}).get("schedulerInfo", {})
    if info.get("type") != "capacityScheduler":
        return None
    pending = [info]
    while pending:
        node = pending.pop()
        if node.get("queueName") == queue and "absoluteMaxCapacity" in node:
            used = node.get("resourcesUsed") or {}
            share = float(node["absoluteMaxCapacity"]) / 100.0
            return Resources(int(total.mb * share) - int(used.get("memory", 0)),
                             int(total.vcores * share) - int(used.get("vCores", 0)))
        pending += (node.get("queues") or {}).get("queue") or []
    return None


def _from_rest(url, queue):
    metrics = _get_json(f"{url}/ws/v1/cluster/metrics")["clusterMetrics"]
    available = Resources(int(metrics["availableMB"]), int(metrics["availableVirtualCores"]))
    total = Resources(int(metrics["totalMB"]), int(metrics["totalVirtualCores"]))
    nodes = None
    try:
        listed = (_get_json(f"{url}/ws/v1/cluster/nodes").get("nodes") or {}).get("node") or []
        nodes = tuple(Resources(int(node["availMemoryMB"]), int(node["availableVirtualCores"]))
                      for node in listed if node.get("state") == "RUNNING")
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.debug("yarn capacity: no node list from %s: %s", url, error)
    try:
        limit = _queue_limit(_get_json(f"{url}/ws/v1/cluster/scheduler"), queue, total)
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.debug("yarn capacity: no scheduler information from %s: %s", url, error)
        limit = None
    if limit is not None:
        available = Resources(min(available.mb, limit.mb), min(available.vcores, limit.vcores))
    return Capacity(f"{url}/ws/v1/cluster/metrics", available, total, nodes or None)


def _from_jmx(url, queue):
    query = f"{url}/jmx?qry=Hadoop:service=ResourceManager,name=QueueMetrics,*"
    beans = {bean.get("tag.Queue"): bean for bean in _get_json(query).get("beans", [])}
    root = beans["root"]
    available = Resources(int(root["AvailableMB"]), int(root["AvailableVCores"]))
    total = Resources(int(root["AvailableMB"]) + int(root["AllocatedMB"]),
                      int(root["AvailableVCores"]) + int(root["AllocatedVCores"]))
    leaf = next((bean for name, bean in beans.items() if name and name.split(".")[-1] == queue
                 and name != "root"), None)
    if leaf is not None:
        available = Resources(min(available.mb, int(leaf["AvailableMB"])),
                              min(available.vcores, int(leaf["AvailableVCores"])))
    return Capacity(query, available, total)


def read_capacity(properties, queue="default"):
    """Ask the ResourceManager (REST API, else JMX) what is free for a new job in ``queue``.

    Parameters
    ----------
    properties : dict
        The Hadoop site properties (:func:`site_properties`).
    queue : str
        The job's queue (leaf name).

    Returns
    -------
    Capacity

    Raises
    ------
    OSError
        When no ResourceManager address is configured or none answered usefully; the message says which
        addresses were tried and why each failed.
    """
    urls = resource_manager_urls(properties)
    if not urls:
        raise OSError("no yarn.resourcemanager.webapp.address or yarn.resourcemanager.hostname in the Hadoop "
                      "configuration")
    failures = []
    for url in urls:
        for read in (_from_rest, _from_jmx):
            try:
                return read(url, queue)
            except (OSError, ValueError, KeyError, TypeError) as error:
                reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
                failures.append(f"{read.__name__[6:]} at {url}: {reason}")
    raise OSError("; ".join(failures))


def hadoop_map_slots(jobconf):
    """Map tasks a new job can run at once on the cluster the ``hadoop`` command uses, and how that was found.

    Parameters
    ----------
    jobconf : dict
        The job's Hadoop settings (its class's ``JOBCONF`` updated with the mrjob config's ``jobconf``).

    Returns
    -------
    (int, str)
        The map slots (may be 0 when the cluster is full) and a sentence for the log.

    Raises
    ------
    OSError
        When the Hadoop configuration directory is not set or the ResourceManager cannot be asked.
    ValueError
        When a container size setting is not a positive int, or a site file is not XML.
    """
    conf_dir = hadoop_conf_dir()
    if not conf_dir:
        raise OSError("neither HADOOP_CONF_DIR nor HADOOP_HOME is set")
    properties = site_properties(conf_dir)
    task, master = container_sizes(properties, jobconf)
    queue = str(jobconf.get("mapreduce.job.queuename") or properties.get("mapreduce.job.queuename")
                or "default").split(".")[-1]
    capacity = read_capacity(properties, queue)
    slots = map_slots(capacity, task, master)
    how = (f"{capacity.source}: {capacity.available.mb} MB and {capacity.available.vcores} vcores free of "
           f"{capacity.total.mb} MB and {capacity.total.vcores} in queue {queue!r}"
           f"{'' if capacity.nodes is None else f' on {len(capacity.nodes)} nodes'}; map containers "
           f"{task.mb} MB / {task.vcores} vcores, application master {master.mb} MB / {master.vcores}")
    return slots, how
