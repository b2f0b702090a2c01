"""The naive design: one transformers `generate` call after another, no server around it.

It runs in a spawned child process, so its model, its torch threads and its
memory never mix with the bot process being measured; the child loads the model
from the same directory vLLM serves, warms up, then times each prompt alone.

The naive design gets its best shot: before timing, the child tries torch's
default thread count and a single thread, and keeps the faster. On a busy
2-core machine torch's two threads wait on each other whenever one is
descheduled, and `generate` slows down tenfold; one thread does not. Where CUDA
is available the model runs on the GPU, as vLLM does there.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from engine.types import Sampling

CALIBRATION_TOKENS = 16


@dataclass(frozen=True, slots=True)
class GenerateJob:
    """Everything the child needs: where the model is, the chat prompts, how to sample."""

    source: str
    prompts: tuple[tuple[tuple[str, str], ...], ...]  # (role, content) per message
    sampling: Sampling


@dataclass(frozen=True, slots=True)
class Timed:
    """One prompt answered: wall seconds for its `generate` call and tokens generated."""

    seconds: float
    tokens: int
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class SequentialRun:
    threads: int  # torch threads used: the faster of the default and one
    timings: tuple[Timed, ...]


def run_sequential(job: GenerateJob) -> SequentialRun:
    """Answer every prompt one after another in a fresh process. Blocking."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(generate_all, job).result()


def generate_all(job: GenerateJob) -> SequentialRun:
    """The child's work (module-level so that spawn can import it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(job.source)
    model = AutoModelForCausalLM.from_pretrained(job.source, dtype="auto")
    if torch.cuda.is_available():
        model = model.to("cuda")  # type: ignore[arg-type]  # transformers types `to` narrowly
    if job.sampling.seed is not None:
        torch.manual_seed(job.sampling.seed)
    encoded = [_encode(tokenizer, prompt) for prompt in job.prompts]
    with torch.inference_mode():
        threads = _fastest_threads(model, tokenizer, encoded[0], job.sampling)
        torch.set_num_threads(threads)
        return SequentialRun(threads, tuple(_timed(model, tokenizer, ids, job.sampling) for ids in encoded))


def _fastest_threads(model: object, tokenizer: object, ids: list[int], sampling: Sampling) -> int:
    """torch's default thread count or one, whichever generates faster here, now."""
    import torch

    best: tuple[float, int] | None = None
    for threads in dict.fromkeys((torch.get_num_threads(), 1)):
        torch.set_num_threads(threads)
        _generate(model, tokenizer, ids, sampling, 1)  # warm-up at this thread count
        start = time.perf_counter()
        _generate(model, tokenizer, ids, sampling, CALIBRATION_TOKENS)
        elapsed = time.perf_counter() - start
        if best is None or elapsed < best[0]:
            best = (elapsed, threads)
    assert best is not None
    return best[1]


def _encode(tokenizer: object, prompt: tuple[tuple[str, str], ...]) -> list[int]:
    messages = [{"role": role, "content": content} for role, content in prompt]
    ids = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
        messages, tokenize=True, add_generation_prompt=True, return_dict=False
    )
    return list(ids)


def _timed(model: object, tokenizer: object, ids: list[int], sampling: Sampling) -> Timed:
    start = time.perf_counter()
    produced = _generate(model, tokenizer, ids, sampling, sampling.max_tokens)
    return Timed(time.perf_counter() - start, produced, len(ids))


def _generate(model: object, tokenizer: object, ids: list[int], sampling: Sampling, tokens: int) -> int:
    """Fixed-length generation (`min_new_tokens` = `max_new_tokens`), sampled like vLLM."""
    import torch

    inputs = torch.tensor([ids], device=model.device)  # type: ignore[attr-defined]
    sample = bool(sampling.temperature)  # None or 0: greedy (the caller makes the model's choice explicit)
    out = model.generate(  # type: ignore[attr-defined]
        inputs,
        attention_mask=torch.ones_like(inputs),
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        do_sample=sample,
        temperature=sampling.temperature if sample else None,
        top_p=sampling.top_p if sample else None,
        repetition_penalty=sampling.repetition_penalty,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,  # type: ignore[attr-defined]
    )
    return int(out.shape[1]) - len(ids)
