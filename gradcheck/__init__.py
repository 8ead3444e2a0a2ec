"""gradcheck: prove hand-derived gradients right or wrong, and say what is wrong."""

from importlib.metadata import PackageNotFoundError, version

from gradcheck import mlp, network, problems, strategies
from gradcheck._batch import BatchReport, check_batch
from gradcheck._check import assert_gradients, check_gradients
from gradcheck._report import GradientMismatch, ParamResult, ReferencesDisagree, Report

try:
    __version__ = version("gradcheck")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BatchReport",
    "GradientMismatch",
    "ParamResult",
    "ReferencesDisagree",
    "Report",
    "__version__",
    "assert_gradients",
    "check_batch",
    "check_gradients",
    "mlp",
    "network",
    "problems",
    "strategies",
]
