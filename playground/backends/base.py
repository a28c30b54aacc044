"""The one small interface every inference engine implements."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence, runtime_checkable

from playground.models.spec import ModelSpec
from playground.sampling import SamplingParams

Message = dict[str, str]


@dataclass
class Chunk:
    """One streamed piece of an answer; the last one carries finish_reason."""

    text: str
    n_prompt_tokens: int
    n_output_tokens: int
    ttft_s: float | None
    elapsed_s: float
    finish_reason: str | None = None   # stop | length | cancelled | error
    notices: tuple[str, ...] | None = None   # status lines for the pane (a remote server's queue position):
                                             # when not None, they replace this generation's last ones


@runtime_checkable
class LoadedModel(Protocol):
    """A model in memory, ready to generate. Implementations serialise their own use."""

    spec: ModelSpec
    backend: str
    device: str
    context_length: int
    bos_text: str          # prepended to a prompt that does not start with it ("" if none needed)
    warnings: list[str]    # shown to the user, e.g. a GPU request that fell back to CPU
    ran_on: str            # where it really runs, for a pane's figures (llama.cpp: "cpu (0/31 layers on GPU)")
    raw_continuation: bool # False: cannot continue raw text (a chat-only server), so a follow-up step is a turn

    def render_chat(self, messages: Sequence[Message]) -> str:
        """The exact text (with special tokens) the chat template makes of these messages."""

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for this exact text (special tokens parsed, nothing added)."""

    def stream(self, prompt: str, sampling: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[Chunk]:
        """Generate from the exact prompt text (tokenised as is: no BOS added), until a stop."""

    def continuation_logprob(self, prompt: str, continuation: str) -> tuple[float, int]:
        """Sum of log-probabilities of `continuation` given `prompt`, and its token count."""

    def close(self) -> None:
        """Free the memory now."""


class Backend(Protocol):
    """Loads ModelSpecs into LoadedModels."""

    name: str
    devices: tuple[str, ...]

    def supports(self, spec: ModelSpec) -> bool: ...

    def load(self, spec: ModelSpec, *, device: str, threads: int, n_ctx: int,
             compute_lock: "threading.Lock | None" = None) -> LoadedModel:
        """compute_lock: held around each decode step so models on one device take turns."""

    def estimate_bytes(self, spec: ModelSpec) -> int:
        """Memory the loaded model will take, for the cache's budget."""


def shared_prefix(cached: Sequence[int] | None, prompt: Sequence[int] | None) -> int:
    """How many leading tokens a cached prompt shares with this one (both backends re-use a prompt cache by it)."""
    if not cached or not prompt:
        return 0
    n = 0
    for a, b in zip(cached, prompt, strict=False):
        if a != b:
            break
        n += 1
    return n
