"""How the harness reads a scaffold's answer as an action: the rule is the submission's
(`answers:` in submission.yaml), recorded in each episode's spec, re-applied by verify."""

from __future__ import annotations

ANSWER_RULES = ("forgiving", "exact")  # submission.yaml `answers:`; recorded in each episode's spec


def resolve_action(answer: object, actions: tuple[str, ...], rule: str = "forgiving") -> str | None:
    """The action an answer names, or None. "forgiving" (the default): exact after trimming,
    else case-insensitive. "exact": the answer is an action name as it stands (a scaffold that
    reads the model's answer by its own rule, as BALROG's naive agent does, declares it)."""
    if not isinstance(answer, str):
        return None
    if rule == "exact":
        return answer if answer in actions else None
    text = answer.strip()
    if text in actions:
        return text
    folded = {action.lower(): action for action in actions}
    return folded.get(text.lower())
