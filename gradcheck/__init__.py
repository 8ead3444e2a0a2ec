"""gradcheck: prove hand-derived gradients right or wrong, and say what is wrong."""

from importlib.metadata import PackageNotFoundError, version

from gradcheck import mlp, network, problems, strategies
from gradcheck._batch import check_batch
from gradcheck._batch_report import BatchReport
from gradcheck._check import assert_gradients, check_gradients
from gradcheck._derivatives import (
    assert_custom_rule,
    assert_hessian,
    assert_jacobian,
    assert_jvp,
    assert_vjp,
    check_custom_rule,
    check_hessian,
    check_jacobian,
    check_jvp,
    check_vjp,
)
from gradcheck._report import GradientMismatch, ImpreciseGradient, ParamResult, ReferencesDisagree, Report

try:
    __version__ = version("gradcheck")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BatchReport",
    "GradientMismatch",
    "ImpreciseGradient",
    "ParamResult",
    "ReferencesDisagree",
    "Report",
    "__version__",
    "assert_custom_rule",
    "assert_gradients",
    "assert_hessian",
    "assert_jacobian",
    "assert_jvp",
    "assert_vjp",
    "check_batch",
    "check_custom_rule",
    "check_gradients",
    "check_hessian",
    "check_jacobian",
    "check_jvp",
    "check_vjp",
    "mlp",
    "network",
    "problems",
    "strategies",
]
