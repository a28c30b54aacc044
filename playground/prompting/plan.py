"""`PromptPlan`: what one prompting mode asks the engine to send (see docs/architecture.md)."""
from __future__ import annotations

from dataclasses import dataclass

Message = dict[str, str]
"""One chat turn: {"role": "system" | "user" | "assistant", "content": str}."""

MODES: tuple[str, ...] = (
    "zero_shot", "few_shot", "zero_shot_cot", "few_shot_cot", "instruction", "self_consistency",
)
"""Mode ids, in the order the UI lists them; stored in the database, so never rename one."""

MODE_TITLES: dict[str, str] = {
    "zero_shot": "Zero-shot",
    "few_shot": "Few-shot (in-context learning)",
    "zero_shot_cot": "Zero-shot chain-of-thought",
    "few_shot_cot": "Few-shot chain-of-thought",
    "instruction": "Instruction prompt",
    "self_consistency": "Self-consistency (CoT + majority vote)",
}

ANSWER_KINDS: tuple[str, ...] = ("number", "yes_no", "choice", "text", "auto", "none")
"""What a plan extracts; "none" (set by build_plan when the question asks for no number, choice or
yes/no) shows no extracted answer. Presets may not say "none" (see presets.PRESET_ANSWER_KINDS)."""


@dataclass(frozen=True)
class PromptPlan:
    """A mode's output, before any model is involved.

    Chat (instruct) models get `messages`, which the engine renders through the model's own chat
    template; base models get `text`, the exact frame that is sent. Exactly one of the two is set,
    so the engine never has to guess which path applies.
    """

    mode: str
    messages: tuple[Message, ...] | None
    text: str | None
    stop: tuple[str, ...]
    n_samples: int = 1
    answer_kind: str = "auto"
    followup: str | None = None
    preset_id: str | None = None
    system: str | None = None          # the system prompt this plan carries (recorded as provenance)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"PromptPlan.mode must be one of {MODES}, got {self.mode!r}")
        if (self.messages is None) == (self.text is None):
            raise ValueError("PromptPlan needs exactly one of messages (chat models) or text (base models)")
        if self.n_samples < 1:
            raise ValueError(f"PromptPlan.n_samples must be >= 1, got {self.n_samples}")
        if self.answer_kind not in ANSWER_KINDS:
            raise ValueError(f"PromptPlan.answer_kind must be one of {ANSWER_KINDS}, got {self.answer_kind!r}")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None
