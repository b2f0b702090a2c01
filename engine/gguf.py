"""GGUF → a bfloat16 Hugging Face directory that vLLM loads (vLLM's own GGUF support is
an out-of-tree plugin now).

transformers reads the GGUF file and dequantizes it (needs the `gguf` package);
the model is saved without its quantizer. What the GGUF file lacks for chatting
is filled in per architecture: a base Gemma 3 ships no chat template, and its
turns end with `<end_of_turn>`, not its end-of-sequence token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as transformers_logging
from transformers.utils.quantization_config import GgufConfig

LICENCE_FILE = "LICENCE-NOTE.txt"
LICENCE_NOTE = (
    "Converted by Hearth from {gguf} for local use. Licence of the weights: {licence}.\n"
    "Redistributing this directory is redistributing the model: its licence applies.\n"
)
# Gemma 3's own template, less its multimodal parts: no system role, so the system
# prompt opens the first user turn; the assistant's role is "model".
GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


@dataclass(frozen=True, slots=True)
class ChatFix:
    """What one architecture's GGUF files miss for chat."""

    chat_template: str
    end_of_turn: str | None = None  # a token that ends a reply besides EOS
    add_bos_token: bool = False


CHAT_FIXES = {"gemma3_text": ChatFix(GEMMA3_TEMPLATE, "<end_of_turn>", add_bos_token=True)}


def convert_gguf(gguf: Path, target: Path, *, licence: str) -> None:
    """Write the model in `gguf` as a bfloat16 Hugging Face directory into `target`."""
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    dequantize = GgufConfig(dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16, quantization_config=dequantize
    )
    fix = CHAT_FIXES.get(model.config.model_type)
    extra = {"add_bos_token": True} if fix and fix.add_bos_token else {}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, **extra)
    if not tokenizer.chat_template:
        if fix is None:
            raise ValueError(f"{gguf.name} has no chat template and Hearth knows none for "
                             f"{model.config.model_type}")
        tokenizer.chat_template = fix.chat_template
    if fix and fix.end_of_turn:
        end_of_turn = tokenizer.convert_tokens_to_ids(fix.end_of_turn)
        model.generation_config.eos_token_id = [*_ids(model.config.eos_token_id), end_of_turn]
    setattr(model, "hf_quantizer", None)  # a plain bfloat16 checkpoint from here on  # noqa: B010
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    licence = f"{licence} (the GGUF file says: {gguf_licence(gguf) or 'nothing'})"
    (target / LICENCE_FILE).write_text(LICENCE_NOTE.format(gguf=gguf.name, licence=licence), "utf-8")
    _drop_quantization_from_config(target / "config.json")


def gguf_licence(gguf: Path) -> str | None:
    """The `general.license` a GGUF file declares (e.g. `apache-2.0`, `gemma`)."""
    from gguf import GGUFReader

    field = GGUFReader(gguf).fields.get("general.license")
    return str(field.contents()) if field is not None else None


def _ids(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _drop_quantization_from_config(path: Path) -> None:
    config = json.loads(path.read_text("utf-8"))
    if config.pop("quantization_config", None) is not None:
        path.write_text(json.dumps(config, indent=2) + "\n", "utf-8")
