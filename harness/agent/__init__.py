"""The agent side: the public scaffold API, submissions, and the episode loop.

Submissions import `from harness.agent import Scaffold, Step` (and `Task` for type hints).
"""

from harness.agent.api import Reply, Scaffold, Step, Task
from harness.memory import MemoryAccessError, MemoryLimitError

__all__ = ["MemoryAccessError", "MemoryLimitError", "Reply", "Scaffold", "Step", "Task"]
