"""Tree ensembles on the real single-machine Hadoop (issue 23, item 6): datasets and checkpoints on
``hdfs://``, tasks in YARN containers; the trees bitwise those of the inline runner, one job per pass (gbt)
and with ``--allreduce`` (random forest)."""

import uuid

import numpy as np
import pytest

from mrtrain.storage.dataset import write_dataset
from mrtrain.storage.filesystem import get_filesystem, join
from mrtrain.tree_fitted import TreeFittedModel
from mrtrain.tree_training import TreeConfig, fit_trees

pytestmark = pytest.mark.hadoop


@pytest.fixture(scope="module")
def pair(hadoop_cluster, tmp_path_factory):
    base = f"{hadoop_cluster['MRTRAIN_HDFS_URL']}/user/{hadoop_cluster['MRTRAIN_HDFS_USER']}/" \
           f"mrtrain-tests/{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 3))
    X[rng.random(300) < 0.1, 1] = np.nan
    y = ((X[:, 0] > 0) | np.isnan(X[:, 1])).astype(float)
    local = str(tmp_path_factory.mktemp("trees") / "d")
    for uri in (local, join(base, "d")):
        write_dataset(uri, X, y, partitions=3, missing=True)
    yield base, join(base, "d"), local
    get_filesystem(base).delete(base, recursive=True)


def _bits(model):
    return {name: np.ascontiguousarray(v).tobytes() for name, v in model.ensemble.to_arrays().items()}


def test_gbt_on_yarn_equals_inline_bitwise(pair):
    base, remote, local = pair
    config = TreeConfig(n_trees=1, max_depth=2, max_bins=16)  # 4 jobs: bins, base score, 2 levels
    checkpoints = join(base, "gbt-ck")
    on_yarn = fit_trees(remote, config, runner="hadoop", reducers=0, checkpoint_dir=checkpoints)
    assert _bits(on_yarn) == _bits(fit_trees(local, config))
    assert _bits(TreeFittedModel.load(checkpoints)) == _bits(on_yarn)


def test_random_forest_on_yarn_with_allreduce_equals_inline_bitwise(pair):
    _, remote, local = pair
    config = TreeConfig(model="random-forest", n_trees=2, max_depth=2, max_bins=16, max_features="sqrt")
    on_yarn = fit_trees(remote, config, runner="hadoop", allreduce=True, allreduce_tasks=2)
    assert _bits(on_yarn) == _bits(fit_trees(local, config))
