"""What the command-line scripts share: quiet logs by default."""

import logging
import os

from absl import logging as absl_logging

_LIBRARY_PATHS = (f"{os.sep}tensorflow{os.sep}", f"{os.sep}tf_keras{os.sep}")


def _only_our_info(record):
    """Keep INFO lines of tfdisc and the scripts; TensorFlow's and Keras's only from WARNING up."""
    return record.levelno >= logging.WARNING or not any(part in record.pathname for part in _LIBRARY_PATHS)


def quiet_library_logs():
    """Hide TensorFlow's and Keras's INFO lines (SavedModel internals and the like) unless --verbosity >= 1."""
    if absl_logging.get_verbosity() < absl_logging.DEBUG:
        absl_logging.get_absl_handler().addFilter(_only_our_info)
        logging.getLogger("tensorflow").setLevel(logging.WARNING)  # it has a handler of its own
