"""robusttext: certify and train text classifiers robust to word substitutions."""

from robusttext.errors import RobustTextError

__version__ = "0.1.0"
__all__ = ["RobustTextError", "__version__"]
