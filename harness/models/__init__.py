"""Model access: the chat client, routing by routine, the embedded CPU model server."""

from harness.models.client import ChatClient, ChatResult, ModelUnavailableError
from harness.models.router import ROUTINES, ModelRouter, Specialist

__all__ = ["ROUTINES", "ChatClient", "ChatResult", "ModelRouter", "ModelUnavailableError", "Specialist"]
