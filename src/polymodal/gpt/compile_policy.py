"""When generation compiles its decode step (``compile="auto"``): a module of its own, without torch, so that
``polymodal generate --help`` can say it without loading the model code."""

from __future__ import annotations

# compile="auto" compiles the decode step when a call asks for at least this many tokens. Measured at the
# shakespeare_char size, one thread, load 3.4-4.5 (docs/benchmarks/nanogpt.md): compiling saves ~0.5 ms per
# token (895 -> ~1,500 tokens/s) and costs 4-5 s per process with a warm inductor cache, ~25 s cold, so it
# pays for itself after ~10^4 tokens (warm) to ~5·10^4 (cold).
AUTO_COMPILE_TOKENS = 20_000


def wants_compile(compile: bool | str, max_new_tokens: int) -> bool:
    """Resolve ``compile`` (True, False or "auto") for a call that generates ``max_new_tokens``."""
    if compile == "auto":
        return max_new_tokens >= AUTO_COMPILE_TOKENS
    if isinstance(compile, bool):
        return compile
    raise ValueError(f"gpt: compile must be true, false or 'auto', got {compile!r}")
