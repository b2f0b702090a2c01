"""engine.shapes: random weights in a real model's exact shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine.shapes import SHAPES, Shape, pad_tokenizer_file, tensor_specs, write_safetensors

# Qwen2.5 0.5B Instruct has 494,032,768 parameters (tied embeddings).
QWEN_05B_PARAMS = 494_032_768
TINY = Shape(hidden=128, layers=2, heads=2, kv_heads=1, intermediate=256, vocab=512, tied_embeddings=False)


def params(shape: Shape) -> int:
    return sum(int(np.prod(spec.shape)) for spec in tensor_specs(shape, None))


def test_the_qwen_shape_has_the_real_models_parameter_count() -> None:
    assert params(SHAPES["qwen2.5-0.5b"]) == QWEN_05B_PARAMS


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_head_size_is_one_vllms_cpu_attention_takes(name: str) -> None:
    assert SHAPES[name].head_size in (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def test_the_written_file_loads_with_every_tensor_in_its_shape(tmp_path: Path) -> None:
    specs = list(tensor_specs(TINY, None))
    with (tmp_path / "model.safetensors").open("wb") as out:
        write_safetensors(out, specs, np.random.default_rng(0))
    tensors = load_file(tmp_path / "model.safetensors")
    assert {name: tuple(t.shape) for name, t in tensors.items()} == {s.name: s.shape for s in specs}
    weight = tensors["model.layers.0.mlp.up_proj.weight"].float()
    assert tensors["model.norm.weight"].eq(1).all()
    assert weight.dtype == torch.float32 and 0.01 < weight.abs().mean() < 0.04


def test_awq_tensors_carry_the_gemm_layout(tmp_path: Path) -> None:
    specs = list(tensor_specs(TINY, "awq"))
    with (tmp_path / "model.safetensors").open("wb") as out:
        write_safetensors(out, specs, np.random.default_rng(0))
    tensors = load_file(tmp_path / "model.safetensors")
    prefix = "model.layers.1.mlp.down_proj."
    assert tuple(tensors[prefix + "qweight"].shape) == (256, 128 // 8)
    assert tuple(tensors[prefix + "scales"].shape) == (256 // 128, 128)
    assert tensors[prefix + "qzeros"].dtype == torch.int32 and prefix + "weight" not in tensors


def test_the_padded_tokenizer_decodes_every_id_to_text(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from engine.demo_model import build_tokenizer

    build_tokenizer().save_pretrained(tmp_path)
    pad_tokenizer_file(tmp_path / "tokenizer.json", 4096)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert len(tokenizer) == 4096
    assert tokenizer.decode([4095]).strip().isalpha()
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["vocab"]
