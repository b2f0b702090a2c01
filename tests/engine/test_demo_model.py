"""Tests for engine.demo_model: the offline tiny chat model builder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from engine.demo_model import (
    AWQ_GROUP_SIZE,
    AWQ_LAYERS,
    MARKER_NAME,
    AwqWeight,
    build_demo_model,
    dequantize_awq,
    quantize_awq,
)

MIXED_TEXT = "Hello, 世界! 今天天气很好 🌤️👍 naïve café\n\tdef f(x): return x**2  "
# in, out features of each quantized layer in the demo model (hidden 128, MLP 256).
LAYER_SHAPES = {
    "self_attn.q_proj": (128, 128),
    "self_attn.k_proj": (128, 128),
    "self_attn.v_proj": (128, 128),
    "self_attn.o_proj": (128, 128),
    "mlp.gate_proj": (128, 256),
    "mlp.up_proj": (128, 256),
    "mlp.down_proj": (256, 128),
}
EPS = 1e-6


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo")


@pytest.fixture(scope="module")
def awq_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo-awq", quantize="awq")


@pytest.fixture(scope="module")
def tokenizer(plain_model: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(plain_model)


def read_json(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def assert_within_half_scale(weight: torch.Tensor, packed: AwqWeight) -> None:
    scales = packed.scales.float().t().repeat_interleave(AWQ_GROUP_SIZE, dim=1)
    error = (dequantize_awq(packed) - weight.float()).abs()
    assert bool((error <= scales / 2 + EPS).all()), f"max excess {(error - scales / 2).max()}"


def test_config_describes_tiny_llama(plain_model: Path) -> None:
    config = read_json(plain_model / "config.json")
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"]) == (128, 2)
    assert config["hidden_size"] // config["num_attention_heads"] == 64
    assert config["intermediate_size"] == 256
    assert config["max_position_embeddings"] == 4096
    assert config["dtype"] == "bfloat16"
    assert "quantization_config" not in config
    assert (plain_model / "model.safetensors").is_file()


def test_vocab_is_padded_to_multiple_of_64(plain_model: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    vocab_size = read_json(plain_model / "config.json")["vocab_size"]
    assert vocab_size % 64 == 0
    assert 2000 <= len(tokenizer) <= vocab_size < len(tokenizer) + 64


def test_tokenizer_round_trips_mixed_text(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = tokenizer.encode(MIXED_TEXT, add_special_tokens=False)
    assert tokenizer.decode(ids) == MIXED_TEXT


def test_chat_template_renders_roles_with_generation_prompt(tokenizer: PreTrainedTokenizerBase) -> None:
    messages = [
        {"role": "system", "content": "You are Hearth."},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "Hi!"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are Hearth.<|im_end|>\n"
        "<|im_start|>user\n你好<|im_end|>\n"
        "<|im_start|>assistant\nHi!<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chat_template_without_generation_prompt(tokenizer: PreTrainedTokenizerBase) -> None:
    messages = [{"role": "user", "content": "hi"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n"


def test_special_tokens_are_single_ids(tokenizer: PreTrainedTokenizerBase) -> None:
    for token in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        ids = tokenizer.encode(f"a{token}b", add_special_tokens=False)
        assert ids[1:-1] == [tokenizer.convert_tokens_to_ids(token)]


def test_eos_id_agrees_everywhere(plain_model: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    config = read_json(plain_model / "config.json")
    generation = read_json(plain_model / "generation_config.json")
    assert tokenizer.eos_token == "<|im_end|>"
    assert config["eos_token_id"] == generation["eos_token_id"] == tokenizer.eos_token_id
    assert config["bos_token_id"] == tokenizer.bos_token_id
    assert config["pad_token_id"] == tokenizer.pad_token_id


def test_second_build_is_a_no_op(plain_model: Path) -> None:
    files = sorted(plain_model.iterdir())
    before = {path: path.stat().st_mtime_ns for path in files}
    assert build_demo_model(plain_model) == plain_model
    assert {path: path.stat().st_mtime_ns for path in sorted(plain_model.iterdir())} == before
    assert read_json(plain_model / MARKER_NAME)["quantize"] is None


def test_build_leaves_no_staging_directory(plain_model: Path) -> None:
    assert [path.name for path in plain_model.parent.iterdir()] == [plain_model.name]


def test_other_parameters_rebuild(tmp_path: Path) -> None:
    target = build_demo_model(tmp_path / "nested" / "demo", seed=1)
    first = load_file(target / "model.safetensors")["model.embed_tokens.weight"]
    build_demo_model(target, seed=2)
    second = load_file(target / "model.safetensors")["model.embed_tokens.weight"]
    assert read_json(target / MARKER_NAME)["seed"] == 2
    assert not torch.equal(first, second)


def test_same_seed_gives_same_weights(plain_model: Path, tmp_path: Path) -> None:
    first = load_file(plain_model / "model.safetensors")
    second = load_file(build_demo_model(tmp_path / "demo") / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_refuses_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        build_demo_model(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_rejects_unknown_quantization(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_demo_model(tmp_path / "demo", quantize="gptq")  # type: ignore[arg-type]


def test_awq_config(awq_model: Path) -> None:
    config = read_json(awq_model / "config.json")
    assert config["dtype"] == "float16"
    assert config["quantization_config"] == {
        "quant_method": "awq",
        "bits": 4,
        "group_size": 64,
        "zero_point": True,
        "version": "gemm",
    }
    assert read_json(awq_model / MARKER_NAME)["quantize"] == "awq"


def test_awq_checkpoint_layout(awq_model: Path) -> None:
    tensors = load_file(awq_model / "model.safetensors")
    for layer in range(2):
        for name, (in_features, out_features) in LAYER_SHAPES.items():
            prefix = f"model.layers.{layer}.{name}"
            assert f"{prefix}.weight" not in tensors
            groups = in_features // AWQ_GROUP_SIZE
            assert tensors[f"{prefix}.qweight"].shape == (in_features, out_features // 8)
            assert tensors[f"{prefix}.qzeros"].shape == (groups, out_features // 8)
            assert tensors[f"{prefix}.scales"].shape == (groups, out_features)
            assert tensors[f"{prefix}.qweight"].dtype == torch.int32
            assert tensors[f"{prefix}.qzeros"].dtype == torch.int32
            assert tensors[f"{prefix}.scales"].dtype == torch.float16


def test_awq_keeps_embeddings_norms_and_head_in_fp16(awq_model: Path) -> None:
    tensors = load_file(awq_model / "model.safetensors")
    plain = [name for name in tensors if name.endswith(".weight")]
    assert {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} <= set(plain)
    assert all("_proj" not in name for name in plain)
    assert all(tensors[name].dtype == torch.float16 for name in plain)


def test_dequantize_of_quantize_is_within_half_a_step() -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(256, 128, generator=generator) * 0.05
    weight[:8, :64] = weight[:8, :64].abs() + 0.1  # groups that hold no zero
    weight[8:16, 64:] = 0.0  # an all-zero group
    assert_within_half_scale(weight, quantize_awq(weight))


def test_quantize_produces_awq_tensor_types() -> None:
    packed = quantize_awq(torch.randn(128, 256))
    assert packed.qweight.shape == (256, 16) and packed.qweight.dtype == torch.int32
    assert packed.qzeros.shape == (4, 16) and packed.qzeros.dtype == torch.int32
    assert packed.scales.shape == (4, 128) and packed.scales.dtype == torch.float16


def test_packing_uses_awq_nibble_order() -> None:
    weight = torch.zeros(8, AWQ_GROUP_SIZE)
    weight[:, 0] = torch.arange(8.0)  # output j's first input sits at level j
    weight[:, 1] = 15.0  # every row spans 0..15: step ~1, zero point 0
    word = int(quantize_awq(weight).qweight[0, 0])
    assert [(word >> 4 * i) & 0xF for i in range(8)] == [0, 2, 4, 6, 1, 3, 5, 7]


def test_awq_checkpoint_matches_unquantized_weights(plain_model: Path, awq_model: Path) -> None:
    plain = load_file(plain_model / "model.safetensors")
    quantized = load_file(awq_model / "model.safetensors")
    for name in (n for n in plain if n.split(".")[-2] in AWQ_LAYERS):
        prefix = name.removesuffix(".weight")
        packed = AwqWeight(*(quantized[f"{prefix}.{part}"] for part in AwqWeight._fields))
        assert_within_half_scale(plain[name], packed)
