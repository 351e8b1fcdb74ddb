"""CPU features read at run time, and the mixed-precision policy they allow.

bfloat16 pays on CPUs with bfloat16 instructions (AVX-512 BF16, AMX); elsewhere TensorFlow
emulates it, several times slower than float32. `mixed_precision_policy` chooses for the machine
at hand: "mixed_bfloat16" where the instructions exist, otherwise "float32" with one warning.
"""

import logging
import os
import platform

import tensorflow as tf

logger = logging.getLogger(__name__)

BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
POLICIES = ("float32", "mixed_bfloat16")


def cpu_flags(path: str = "/proc/cpuinfo") -> set:
    """The CPU's feature flags as a set (empty where the file does not exist, e.g. off Linux)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine(path: str = "/proc/cpuinfo") -> str:
    """"<arch>, <n> CPU cores, <model name>": what a timing or a result was measured on."""
    model = "unknown CPU"
    try:
        with open(path) as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {model}"


def has_bfloat16(flags: set | None = None) -> bool:
    """Whether the CPU has bfloat16 arithmetic (any of `BFLOAT16_FLAGS`)."""
    return bool(set(BFLOAT16_FLAGS) & (cpu_flags() if flags is None else flags))


def mixed_precision_policy(requested: bool, flags: set | None = None) -> str:
    """The Keras policy name to train with: "mixed_bfloat16" if `requested` and the CPU has bfloat16.

    Without bfloat16 instructions it warns once and returns "float32": emulated bfloat16 would be
    several times slower, never faster.
    """
    if not requested:
        return "float32"
    if has_bfloat16(flags):
        return "mixed_bfloat16"
    logger.warning("Mixed precision asked for, but this CPU has no bfloat16 instructions (%s): training in float32, "
                   "which is faster here.", " or ".join(BFLOAT16_FLAGS))
    return "float32"


def set_policy(name: str) -> None:
    """Make `name` ("float32" or "mixed_bfloat16") the global Keras policy for models built from now on."""
    if name not in POLICIES:
        raise ValueError(f"Unknown policy {name!r}; valid values are {', '.join(map(repr, POLICIES))}.")
    tf.keras.mixed_precision.set_global_policy(name)
