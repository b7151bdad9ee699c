"""Model and grid sizes are bounded before the first pass (:mod:`mrtrain.engine.memory`): one estimate for
every family, refused in one line naming the parameter and the estimate when it exceeds
``MAX_TRAINING_BYTES`` or the machine's available memory."""

import os
import resource
import subprocess
import sys

import numpy as np
import pytest

from mrtrain.engine.memory import (
    CHECKPOINT_COPIES,
    MAX_TRAINING_BYTES,
    TrainingSize,
    available_memory,
    check_training_size,
    model_floats,
)
from mrtrain.engine.optimizers import OPTIMIZERS
from mrtrain.engine.optimizers.base import Evaluation
from mrtrain.trainer import Trainer

from .datasets import reference_data, write

#: Address space of the ``mrtrain`` processes these tests start: a run that allocates what it estimated
#: (before the bound, hundreds of GiB) fails fast with MemoryError instead of taking the machine.
ADDRESS_SPACE = 4 * 2**30


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def mrtrain(cwd, *argv, timeout=240):
    """``mrtrain -q ARGV`` in ``cwd`` as a user types it, in its own process with a capped address space."""
    return subprocess.run([sys.executable, "-m", "mrtrain", "-q", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limited)


@pytest.fixture
def iris_binary(tmp_path):
    X, y = reference_data("iris")
    write(tmp_path / "data", X[y < 2], y[y < 2])
    return tmp_path


@pytest.mark.parametrize(("options", "parameter", "shown"), [
    (["--model", "mlp", "--layers", "100000000"], "layers", "[100000000]"),
    (["--model", "mlp", "--layers", "64,50000000"], "layers", "[64, 50000000]"),
    (["--model", "logistic", "--reg-path", "1000000", "--cv", "2"], "reg_path", "1000000"),
    (["--model", "logistic", "--l2", ",".join(["0.1"] * 25000), "--cv", "5"], "l2", None),
])
def test_a_training_too_large_for_the_machine_is_refused_in_one_line_before_any_pass(iris_binary, options,
                                                                                    parameter, shown):
    result = mrtrain(iris_binary, "train", "data", *options, "--checkpoint-dir", "ck")
    err = result.stderr.strip().splitlines()
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert len(err) == 1 and err[0].startswith(f"mrtrain: error: The {parameter!r} parameter ("), err
    if shown:
        assert f"({shown})" in err[0]
    assert "would hold about" in err[0] and "iB in the driver" in err[0] and "more than the" in err[0]
    assert not (iris_binary / "ck").exists()


def test_the_python_api_refuses_the_same_way(iris_binary):
    with pytest.raises(ValueError, match=r"The 'layers' parameter \(\[100000000\]\) makes a training that "
                                         r"would hold about 3\d\d GiB"):
        Trainer("mlp", layers=[100_000_000], checkpoint_dir=str(iris_binary / "ck")).fit(
            str(iris_binary / "data"))
    assert not (iris_binary / "ck").exists()


# max_iter 2 keeps the iterative families short; naive Bayes has no iterations and refuses max_iter.
@pytest.mark.parametrize(("model", "options", "parameter"), [
    ("logistic", {"max_iter": 2}, "model"),
    ("logistic", {"optimizer": "newton", "max_iter": 2}, "optimizer"),
    ("logistic", {"l2": [0.1, 0.01], "cv": 2, "max_iter": 2}, "l2"),
    ("multinomial-nb", {}, "model"),
    ("kmeans", {"k": 3, "max_iter": 2}, "k"),
    ("mlp", {"layers": [8], "max_iter": 2}, "layers"),
])
def test_every_family_goes_through_the_limit(tmp_path, monkeypatch, model, options, parameter):
    X, y = reference_data("iris")
    data = write(tmp_path / "data", X[y < 2], y[y < 2])
    fitted = Trainer(model, **options).fit(data)  # far below the limit: trains
    assert fitted.n_iter_ >= 1
    monkeypatch.setenv("MRTRAIN_MAX_TRAINING_BYTES", "100")
    with pytest.raises(ValueError, match=rf"The {parameter!r} parameter .* more than the limit of 100 bytes "
                                         r"\(MAX_TRAINING_BYTES"):
        Trainer(model, checkpoint_dir=str(tmp_path / "ck"), **options).fit(data)
    assert not (tmp_path / "ck").exists()


def quadratic(p, seed=0):
    """A convex quadratic ``½ xᵀAx - bᵀx`` of ``p`` parameters with its gradient and Hessian."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(p, p))
    A, b = M @ M.T / p + np.eye(p), rng.normal(size=p)

    def evaluate(x):
        return Evaluation(float(0.5 * x @ A @ x - b @ x), A @ x - b, A)
    return evaluate


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_state_estimate_is_the_state_the_optimizer_holds_after_many_iterations(name):
    p = 12
    # OWL-QN holds its l1 strengths, one per parameter, besides its state.
    optimizer = OPTIMIZERS[name](l1=np.full(p, 0.01)) if name == "owlqn" else OPTIMIZERS[name]()
    evaluate = quadratic(p)
    state = optimizer.start(optimizer.init(np.zeros(p)), evaluate(np.zeros(p)))
    largest_pass = 0
    for _ in range(25):  # more than L-BFGS's and OWL-QN's 10 history pairs
        plan = optimizer.plan(state)
        evaluations = [evaluate(x) for x in plan.points]
        if optimizer.hessian_points == 0:
            evaluations = [e._replace(hess=None) for e in evaluations]
        largest_pass = max(largest_pass, plan.points.size + sum(e.grad.size for e in evaluations)
                           + sum(e.hess.size for e in evaluations if e.hess is not None))
        state, _ = optimizer.update(state, plan, evaluations)
    held = sum(np.asarray(value).size for value in state if isinstance(value, np.ndarray))
    held += np.size(getattr(optimizer, "l1", []))
    assert optimizer.state_floats(p) == held
    assert largest_pass <= optimizer.pass_floats(p)
    assert model_floats(optimizer, p) == (1 + CHECKPOINT_COPIES) * held + optimizer.pass_floats(p)


def test_the_bound_is_the_smaller_of_the_limit_and_the_available_memory():
    size = TrainingSize("k", 5, 10, 1, 2**20)  # 8 MiB
    check_training_size(size, limit=2**24, available=2**24)
    with pytest.raises(ValueError, match=r"The 'k' parameter \(5\) makes a training that would hold about "
                                         r"8 MiB in the driver .* more than the 4 MiB of memory this machine "
                                         r"has available \(MemAvailable\); choose a smaller 'k'"):
        check_training_size(size, limit=2**30, available=2**22)
    with pytest.raises(ValueError, match=r"more than the limit of 4 MiB \(MAX_TRAINING_BYTES"):
        check_training_size(size, limit=2**22, available=2**30)
    assert MAX_TRAINING_BYTES == 32 * 2**30
    if os.path.exists("/proc/meminfo"):
        assert 0 < available_memory() < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
