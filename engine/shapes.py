"""Random-weight models with the exact shape of real ones, built offline.

`build_shape_model` writes a Hugging Face directory whose config and weights have
a real model's architecture and size (Qwen2.5 0.5B Instruct: 24 layers, hidden
896, 14 query and 2 key/value heads, a 151,936-token vocabulary), so throughput,
cache and memory benchmarks pay realistic per-token costs without a download.
The weights are random bfloat16 (or random 4-bit AWQ), written straight into a
safetensors file a tensor at a time; the tokenizer is the demo's, its vocabulary
padded with pseudo-words up to the model's size so that every id decodes to text.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from engine.builds import build_once

BUILD_FORMAT = 2
SEED = 0
CHUNK_ELEMENTS = 1 << 24  # random numbers are made this many at a time
# Random bfloat16 / float16 values of magnitude 2**-6 to 2**-5 (about the 0.02 of
# an initialiser): random sign and mantissa bits under a fixed exponent.
BF16_SIGN_MANTISSA, BF16_EXPONENT, BF16_ONE = 0x807F, (127 - 6) << 7, 0x3F80
F16_SIGN_MANTISSA, F16_EXPONENT, F16_ONE = 0x83FF, (15 - 6) << 10, 0x3C00
AWQ_BITS = 4
AWQ_GROUP_SIZE = 128  # what published AWQ checkpoints use; GPU and CPU kernels take it
AWQ_ZERO_WORD = 0x88888888  # every 4-bit zero point at 8, the middle of 0..15
AWQ_SCALE = 2.0**-9  # (level - 8) * scale spans about ±0.016
AWQ_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PAD_SYLLABLES = [c + v for c in "bdfghklmnprstvwz" for v in "aeiou"]
BYTE_LEVEL_SPACE = "Ġ"  # how a byte-level BPE vocabulary writes a leading space


@dataclass(frozen=True, slots=True)
class Shape:
    """A real model's architecture (the Qwen2 family: biased q/k/v projections)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    max_positions: int = 32768
    rope_theta: float = 1_000_000.0

    @property
    def head_size(self) -> int:
        return self.hidden // self.heads


# Copied from each model's config.json. vLLM's CPU attention takes head sizes
# 32, 64, 80, 96, 112, 128, ...: these have 64, 128 and 128.
SHAPES = {
    "qwen2.5-0.5b": Shape(896, 24, 14, 2, 4864, 151936, tied_embeddings=True),
    "qwen2.5-1.5b": Shape(1536, 28, 12, 2, 8960, 151936, tied_embeddings=True),
    "qwen2.5-7b": Shape(3584, 28, 28, 4, 18944, 152064, tied_embeddings=False),
}


def build_shape_model(target: Path, shape: str, *, quantize: str | None = None) -> Path:
    """Write a random-weight model of `shape` (a key of `SHAPES`) into `target`, once."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    if quantize not in (None, "awq"):
        raise ValueError(f"unsupported quantization {quantize!r}; use None or 'awq'")
    params = {"format": BUILD_FORMAT, "shape": shape, "quantize": quantize, "seed": SEED}
    return build_once(Path(target), params, lambda staging: _write(staging, SHAPES[shape], quantize))


def _write(directory: Path, shape: Shape, quantize: str | None) -> None:
    from engine.demo_model import build_tokenizer  # transformers: seconds to import

    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(directory)
    pad_tokenizer_file(directory / "tokenizer.json", shape.vocab)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = model_config(shape, quantize, ids)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation = {**ids, "pad_token_id": tokenizer.pad_token_id}
    (directory / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    rng = np.random.default_rng(SEED)
    with (directory / "model.safetensors").open("wb") as out:
        write_safetensors(out, list(tensor_specs(shape, quantize)), rng)


def pad_tokenizer_file(path: Path, vocab: int) -> None:
    """Append pseudo-words (" kamo", " besi", ...) to the BPE vocabulary up to `vocab` ids.

    No merge produces them, so text never encodes to them; but a model sampling
    any id in its range gets text back, as with a real tokenizer."""
    data = json.loads(path.read_text("utf-8"))
    table: dict[str, int] = data["model"]["vocab"]
    taken = set(table) | {t["content"] for t in data["added_tokens"]}
    next_id = max([*table.values(), *(t["id"] for t in data["added_tokens"])]) + 1
    words = _pseudo_words()
    while next_id < vocab:
        word = BYTE_LEVEL_SPACE + next(words)
        if word not in taken:
            table[word] = next_id
            next_id += 1
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")


def _pseudo_words() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        word, rest = "", n
        while rest:
            rest, digit = divmod(rest, len(PAD_SYLLABLES))
            word += PAD_SYLLABLES[digit]
        yield word


def model_config(shape: Shape, quantize: str | None, token_ids: dict[str, Any]) -> dict[str, Any]:
    """The config.json of a Qwen2 model of this shape."""
    config: dict[str, Any] = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads,
        "vocab_size": shape.vocab,
        "max_position_embeddings": shape.max_positions,
        "rope_theta": shape.rope_theta,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "tie_word_embeddings": shape.tied_embeddings,
        "use_sliding_window": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "dtype": "bfloat16" if quantize is None else "float16",
        # Without it, transformers takes the directory for an old Mistral one and warns.
        "transformers_version": metadata.version("transformers"),
        **token_ids,
    }
    if quantize == "awq":
        config["quantization_config"] = {
            "quant_method": "awq", "bits": AWQ_BITS, "group_size": AWQ_GROUP_SIZE,
            "zero_point": True, "version": "gemm",
        }
    return config


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One tensor to write: its name, safetensors dtype, shape and how to fill it."""

    name: str
    dtype: str  # BF16, F16, I32
    shape: tuple[int, ...]
    fill: str  # random, one, awq-zero, awq-scale

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * (4 if self.dtype == "I32" else 2)


def tensor_specs(shape: Shape, quantize: str | None) -> Iterator[TensorSpec]:
    """Every tensor of a Qwen2 checkpoint of this shape, in safetensors order."""
    half = "BF16" if quantize is None else "F16"
    head = shape.head_size
    yield TensorSpec("model.embed_tokens.weight", half, (shape.vocab, shape.hidden), "random")
    linears = {
        "self_attn.q_proj": (shape.hidden, shape.heads * head),
        "self_attn.k_proj": (shape.hidden, shape.kv_heads * head),
        "self_attn.v_proj": (shape.hidden, shape.kv_heads * head),
        "self_attn.o_proj": (shape.heads * head, shape.hidden),
        "mlp.gate_proj": (shape.hidden, shape.intermediate),
        "mlp.up_proj": (shape.hidden, shape.intermediate),
        "mlp.down_proj": (shape.intermediate, shape.hidden),
    }
    for layer in range(shape.layers):
        prefix = f"model.layers.{layer}."
        for name, (fan_in, fan_out) in linears.items():
            yield from _linear(prefix + name, fan_in, fan_out, half, quantize)
            if name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                yield TensorSpec(f"{prefix}{name}.bias", half, (fan_out,), "random")
        yield TensorSpec(prefix + "input_layernorm.weight", half, (shape.hidden,), "one")
        yield TensorSpec(prefix + "post_attention_layernorm.weight", half, (shape.hidden,), "one")
    yield TensorSpec("model.norm.weight", half, (shape.hidden,), "one")
    if not shape.tied_embeddings:
        yield TensorSpec("lm_head.weight", half, (shape.vocab, shape.hidden), "random")


def _linear(name: str, fan_in: int, fan_out: int, half: str, quantize: str | None) -> Iterator[TensorSpec]:
    if quantize is None:
        yield TensorSpec(f"{name}.weight", half, (fan_out, fan_in), "random")
        return
    pack = 32 // AWQ_BITS
    yield TensorSpec(f"{name}.qweight", "I32", (fan_in, fan_out // pack), "random")
    yield TensorSpec(f"{name}.qzeros", "I32", (fan_in // AWQ_GROUP_SIZE, fan_out // pack), "awq-zero")
    yield TensorSpec(f"{name}.scales", "F16", (fan_in // AWQ_GROUP_SIZE, fan_out), "awq-scale")


def write_safetensors(out: BinaryIO, specs: list[TensorSpec], rng: np.random.Generator) -> None:
    """A safetensors file (little-endian header length, JSON header, raw data), streamed."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for spec in specs:
        header[spec.name] = {"dtype": spec.dtype, "shape": list(spec.shape),
                             "data_offsets": [offset, offset + spec.nbytes]}
        offset += spec.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    out.write(struct.pack("<Q", len(encoded)))
    out.write(encoded)
    for spec in specs:
        for chunk in _chunks(spec, rng):
            out.write(chunk.tobytes())


def _chunks(spec: TensorSpec, rng: np.random.Generator) -> Iterator[np.ndarray[Any, Any]]:
    total = int(np.prod(spec.shape))
    for start in range(0, total, CHUNK_ELEMENTS):
        yield _fill(spec, min(CHUNK_ELEMENTS, total - start), rng)


def _fill(spec: TensorSpec, count: int, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    if spec.fill == "awq-zero":
        return np.full(count, AWQ_ZERO_WORD, dtype=np.uint32)
    if spec.fill == "awq-scale":
        return np.full(count, AWQ_SCALE, dtype=np.float16)
    if spec.dtype == "I32":  # packed 4-bit levels: any 32 bits are 8 valid nibbles
        return rng.integers(0, 1 << 32, count, dtype=np.uint32)
    bf16 = spec.dtype == "BF16"
    if spec.fill == "one":
        return np.full(count, BF16_ONE if bf16 else F16_ONE, dtype=np.uint16)
    bits = rng.integers(0, 1 << 16, count, dtype=np.uint16)
    if bf16:
        return (bits & BF16_SIGN_MANTISSA) | BF16_EXPONENT
    return (bits & F16_SIGN_MANTISSA) | F16_EXPONENT
