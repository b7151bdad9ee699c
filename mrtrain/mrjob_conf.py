"""Checking an mrjob config file before mrjob reads it.

mrjob loads ``--conf-path`` with YAML (or JSON) and fails deep inside with an AttributeError or worse on a
file that is not a config at all (``/etc/passwd``), a FIFO, ``/dev/zero`` or a "billion laughs" document.
:func:`check_mrjob_conf` refuses such files first, with one line naming the file: a regular file of at most
:data:`MAX_CONF_BYTES`, UTF-8, a mapping with a ``runners`` mapping of mappings or an ``include``, with its
includes checked too and at most :data:`MAX_CONF_VALUES` values after aliases are expanded.
"""

import os
import stat

import yaml

#: An mrjob config file larger than this is refused unread.
MAX_CONF_BYTES = 2**20
#: Values (after YAML aliases are expanded) an mrjob config file may hold.
MAX_CONF_VALUES = 100_000


def check_mrjob_conf(conf_path):
    """Check that ``conf_path`` is a readable mrjob config file, before mrjob reads it.

    The file must be a regular file of at most :data:`MAX_CONF_BYTES` holding a YAML (or JSON) mapping
    with a ``runners`` mapping (runner name to a mapping of options) and/or ``include`` (a path or list of
    paths, relative to the file's real directory, checked in turn). ``~`` and ``$VARIABLES`` are expanded
    as mrjob expands them.

    Parameters
    ----------
    conf_path : str

    Returns
    -------
    str
        ``conf_path`` unchanged.

    Raises
    ------
    ValueError
        Naming the file, what was expected and what was found.
    """
    if not isinstance(conf_path, str) or not conf_path.strip():
        raise ValueError(f"The 'conf_path' parameter must be a path to an mrjob config file. Got "
                         f"{conf_path!r} instead.")
    _check_conf_file(os.path.expandvars(os.path.expanduser(conf_path)), [], None)
    return conf_path


def _check_conf_file(path, seen, included_by):
    real = os.path.realpath(path)
    if real in seen:
        return
    seen.append(real)
    where = f"{path}: mrjob config" + (f" included by {included_by}" if included_by else "")
    try:
        info = os.stat(path)
    except OSError as error:
        raise ValueError(f"{where}: expected a readable file, found {error.strerror.lower()}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{where}: expected a regular file, found {_file_kind(info.st_mode)}")
    if info.st_size > MAX_CONF_BYTES:
        raise ValueError(f"{where}: expected at most {MAX_CONF_BYTES} bytes, found {info.st_size}")
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read(MAX_CONF_BYTES + 1)
    except UnicodeDecodeError as error:
        raise ValueError(f"{where}: expected UTF-8 text, found byte {error.object[error.start]:#04x} at "
                         f"offset {error.start}") from None
    except OSError as error:
        raise ValueError(f"{where}: expected a readable file, found {error.strerror.lower()}") from None
    conf = _parse_conf(text, where)
    if conf is None:
        raise ValueError(f"{where}: expected a mapping with a 'runners' mapping, found an empty file")
    if not isinstance(conf, dict):
        raise ValueError(f"{where}: expected a mapping with a 'runners' mapping, found a "
                         f"{type(conf).__name__}")
    if "runners" not in conf and "include" not in conf:
        raise ValueError(f"{where}: expected a mapping with a 'runners' mapping, found keys "
                         f"{sorted(map(str, conf))}")
    runners = conf.get("runners") or {}
    if not isinstance(runners, dict):
        raise ValueError(f"{where}: 'runners': expected a mapping of runner names to options, found a "
                         f"{type(runners).__name__}")
    for name, options in runners.items():
        if options is not None and not isinstance(options, dict):
            raise ValueError(f"{where}: 'runners': {name!r}: expected a mapping of options, found a "
                             f"{type(options).__name__}")
    includes = conf.get("include") or []
    includes = [includes] if isinstance(includes, str) else includes
    if not (isinstance(includes, list) and all(isinstance(item, str) for item in includes)):
        raise ValueError(f"{where}: 'include': expected a path or a list of paths, found "
                         f"{conf['include']!r:.80}")
    for include in includes:
        _check_conf_file(
            os.path.join(os.path.dirname(real), os.path.expandvars(os.path.expanduser(include))), seen, path
        )


def _parse_conf(text, where):
    """The YAML document (JSON is YAML) of an mrjob config file, bounded in values after aliases."""
    try:
        loader = _ConfLoader(text)
        try:
            document = loader.get_single_data()
        finally:
            loader.dispose()
    except RecursionError:
        raise ValueError(f"{where}: expected YAML or JSON, found values nested too deeply to parse") from None
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(f"{where}: expected YAML or JSON, found {' '.join(str(error).split())}") from None
    pending, count = [document], 0
    while pending:
        value = pending.pop()
        count += 1
        if count > MAX_CONF_VALUES:
            raise ValueError(f"{where}: expected at most {MAX_CONF_VALUES} values (YAML aliases expanded), "
                             "found more")
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return document


class _ConfLoader(yaml.SafeLoader):
    """YAML's safe loader plus mrjob's ``!clear`` tag (the tagged value is kept as it is)."""


def _construct_cleared(loader, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return yaml.safe_load(node.value)


_ConfLoader.add_constructor("!clear", _construct_cleared)


def _file_kind(mode):
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a named pipe", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    return next((kind for test, kind in kinds.items() if test(mode)), "a special file")
