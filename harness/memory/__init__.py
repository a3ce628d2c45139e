"""The sandboxed memory directory of an episode and the metrics of its use."""

from harness.memory.metrics import memory_metrics
from harness.memory.sandbox import (
    Memory,
    MemoryAccessError,
    MemoryLimitError,
    MemoryLimits,
    MemoryOp,
)

__all__ = ["Memory", "MemoryAccessError", "MemoryLimitError", "MemoryLimits", "MemoryOp", "memory_metrics"]
