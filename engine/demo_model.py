"""Build a tiny random-weight chat model offline, for tests and demos.

`build_demo_model` writes a complete Hugging Face model directory: a byte-level
BPE tokenizer trained here on a small bilingual corpus, a ChatML chat template,
and a two-layer Llama with random weights. With ``quantize="awq"`` the decoder's
linear layers are stored as a real 4-bit AWQ ("gemm" packing) checkpoint, which
vLLM serves on CPU through its WNA16 kernel. The text it generates is noise; the
point is a model that loads, tokenizes any input and streams like a real one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from engine.builds import build_once

Quantize = Literal["awq"] | None

MARKER_NAME = "hearth-demo.json"
BUILD_FORMAT = 1
VOCAB_TARGET = 2048
VOCAB_MULTIPLE = 64
BOS_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
RESERVED_TOKEN = "<|reserved_{}|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MAX_POSITIONS = 4096
HIDDEN_SIZE = 128
NUM_LAYERS = 2
NUM_HEADS = 2  # head size 64: vLLM's CPU attention takes 32, 64, 80, ... only
NUM_KV_HEADS = 2
INTERMEDIATE_SIZE = 256
AWQ_BITS = 4
AWQ_GROUP_SIZE = 64
AWQ_PACK = 32 // AWQ_BITS
AWQ_MAX_INT = 2**AWQ_BITS - 1
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]
FP16_ROUND_UP = 1 + 2**-10  # fp16 rounds to nearest within 2**-11 relative
FP16_TINY = 2**-14  # smallest normal float16
AWQ_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
AWQ_CONFIG: dict[str, Any] = {
    "quant_method": "awq",
    "bits": AWQ_BITS,
    "group_size": AWQ_GROUP_SIZE,
    "zero_point": True,
    "version": "gemm",
}

CORPUS = [
    "Hello! How are you today?",
    "Hi there, nice to meet you.",
    "Good morning, everyone. Did you sleep well?",
    "Thanks a lot for your help, I really appreciate it.",
    "You're welcome. Let me know if you need anything else.",
    "What's the weather like where you are?",
    "It's sunny and warm here, perfect for a walk in the park.",
    "Can you recommend a good book to read this weekend?",
    "I'm learning to cook. Yesterday I made noodles with tomato and egg.",
    "Sorry, I didn't catch that. Could you say it again?",
    "Let's meet at the coffee shop at three o'clock.",
    "The meeting has been moved to Friday afternoon.",
    "Please summarize this article in three sentences.",
    "Write a short poem about the sea and the moon.",
    "Remember to drink water and take a break every hour.",
    "Happy birthday! I hope all your wishes come true. 🎉",
    "Good night, and see you tomorrow.",
    "I am a helpful assistant. Ask me anything.",
    "My favourite season is autumn, when the leaves turn red and gold.",
    "Could you explain how a neural network learns from examples?",
    "The train to Shanghai leaves at half past seven from platform four.",
    "Don't worry about the mistake; everybody forgets things sometimes.",
    "Tell me a joke about programmers and coffee.",
    "Which programming language should a beginner start with?",
    "I've just finished my homework, so now I can play basketball.",
    "Please translate this sentence into Chinese for me.",
    "你好！今天过得怎么样？",
    "很高兴认识你，我是你的聊天助手。",
    "早上好，昨天晚上睡得好吗？",
    "谢谢你的帮助，真的非常感谢。",
    "不客气，有什么问题随时问我。",
    "今天天气很好，阳光明媚，适合去公园散步。",
    "你能推荐一本周末读的好书吗？",
    "我正在学做饭，昨天做了西红柿鸡蛋面。",
    "对不起，我没听清楚，你能再说一遍吗？",
    "我们下午三点在咖啡店见面吧。",
    "会议改到星期五下午了，请大家准时参加。",
    "请用三句话总结这篇文章的主要内容。",
    "写一首关于大海和月亮的短诗。",
    "记得多喝水，每个小时休息一下。",
    "生日快乐！祝你心想事成，天天开心。🎂",
    "晚安，明天见。",
    "我是一个乐于助人的助手，有问题尽管问。",
    "这个周末你打算做什么？我想去爬山。",
    "北京的秋天很美，香山的红叶特别有名。",
    "学习编程需要耐心，多写代码，多看文档。",
    "你喜欢喝茶还是喝咖啡？我更喜欢绿茶。",
    "机器学习模型需要大量数据来训练。",
    "我最喜欢的季节是秋天，树叶变成红色和金色。",
    "你能解释一下神经网络是怎样从例子中学习的吗？",
    "去上海的火车七点半从四号站台出发。",
    "别担心这个错误，每个人有时候都会忘记事情。",
    "给我讲一个关于程序员和咖啡的笑话吧。",
    "初学者应该从哪一种编程语言开始学习呢？",
    "我刚刚做完作业，现在可以去打篮球了。",
    "请帮我把这句话翻译成英文。",
    "周末我们一起去图书馆看书，然后去吃火锅怎么样？",
    "这家餐厅的饺子和包子都非常好吃，价格也很便宜。",
    "明天早上八点开会，别忘了带上笔记本电脑和充电器。",
    "我的手机没电了，可以借用一下你的充电线吗？",
    "春节快到了，大家都在准备回家过年，火车票很难买。",
    "如果遇到问题，可以先看看文档，再去社区提问。",
    "这段代码有一个错误，变量在使用之前没有定义。",
    "人工智能正在改变我们的生活、工作和学习方式。",
    "妈妈让我下班以后顺路去超市买牛奶、面包和水果。",
    "长城是中国最著名的名胜古迹之一，每年吸引很多游客。",
    "请把文件保存好，并且在下午五点之前发给我。",
    "小猫在窗台上晒太阳，看起来又懒又可爱。",
    "地铁站离我家不远，走路大概需要十分钟左右。",
    "医生说感冒的时候要多休息，少熬夜，按时吃药。",
    "我们班下个月要组织一次去杭州西湖的春游活动。",
    "这部电影的故事情节很感人，演员的表演也很精彩。",
    "孩子们在操场上踢足球、跳绳、放风筝，玩得很高兴。",
    "你知道附近哪里有银行、邮局或者药店吗？",
    'def greet(name: str) -> str:\n    return f"Hello, {name}!"',
    "for i in range(10):\n    print(i * i)",
    "import json\ndata = json.loads('{\"key\": [1, 2, 3]}')",
    "class Stack:\n    def __init__(self) -> None:\n        self.items = []",
    "async def main() -> None:\n    await asyncio.sleep(1)",
    "SELECT name, count(*) FROM users GROUP BY name ORDER BY 2 DESC;",
    "const add = (a, b) => a + b; console.log(add(2, 3));",
    'git commit -m "fix: handle empty input" && git push origin main',
]


class AwqWeight(NamedTuple):
    """One linear layer's weight in AWQ "gemm" layout (``in`` features first)."""

    qweight: torch.Tensor  # int32 [in, out / 8]
    qzeros: torch.Tensor  # int32 [in / group, out / 8]
    scales: torch.Tensor  # float16 [in / group, out]


def build_demo_model(target: Path, *, quantize: Quantize = None, seed: int = 0) -> Path:
    """Write a tiny random chat model into `target` and return `target`.

    A directory already holding a model built with the same parameters is
    returned as is. The model is built in a temporary sibling directory and
    renamed into place, so `target` is either absent or complete.
    """
    params = _build_params(quantize, seed)
    return build_once(Path(target), params, lambda staging: _write_model(staging, quantize, seed),
                      marker=MARKER_NAME)


def _build_params(quantize: Quantize, seed: int) -> dict[str, Any]:
    if quantize not in (None, "awq"):
        raise ValueError(f"unsupported quantization {quantize!r}; use None or 'awq'")
    return {"format": BUILD_FORMAT, "quantize": quantize, "seed": seed}


def _write_model(directory: Path, quantize: Quantize, seed: int) -> None:
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(directory)
    model = _random_model(_model_config(tokenizer), seed)
    model.save_pretrained(directory)
    if quantize == "awq":
        _write_awq_checkpoint(directory, model)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Train the byte-level BPE tokenizer on `CORPUS`, with a ChatML template."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer)
    _pad_vocab(backend)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
    )


def _pad_vocab(backend: Tokenizer) -> None:
    """Add reserved special tokens up to a multiple of `VOCAB_MULTIPLE`.

    Padding the tokenizer rather than only the embedding means every id the
    model can sample decodes; a short corpus may leave the trainer under target.
    """
    size = backend.get_vocab_size(with_added_tokens=True)
    missing = -size % VOCAB_MULTIPLE
    backend.add_special_tokens([RESERVED_TOKEN.format(i) for i in range(missing)])


def _model_config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    vocab_size = -(-len(tokenizer) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    return LlamaConfig(
        hidden_size=HIDDEN_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        intermediate_size=INTERMEDIATE_SIZE,
        vocab_size=vocab_size,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="bfloat16",
    )


def _random_model(config: LlamaConfig, seed: int) -> LlamaForCausalLM:
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(seed)
        model: LlamaForCausalLM = LlamaForCausalLM(config).bfloat16()  # type: ignore[no-untyped-call]
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    return model


def _write_awq_checkpoint(directory: Path, model: LlamaForCausalLM) -> None:
    """Replace the saved weights and config with their 4-bit AWQ form."""
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if _is_awq_layer(name):
            prefix = name.removesuffix(".weight")
            for part, packed in quantize_awq(tensor)._asdict().items():
                tensors[f"{prefix}.{part}"] = packed
        else:
            tensors[name] = tensor.to(torch.float16).contiguous()
    for old in directory.glob("model*.safetensors*"):
        old.unlink()
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config.update(dtype="float16", quantization_config=AWQ_CONFIG)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _is_awq_layer(name: str) -> bool:
    parts = name.split(".")
    return name.startswith("model.layers.") and parts[-1] == "weight" and parts[-2] in AWQ_LAYERS


def quantize_awq(weight: torch.Tensor, group_size: int = AWQ_GROUP_SIZE) -> AwqWeight:
    """Round-to-nearest 4-bit quantization of a ``[out, in]`` weight, AWQ-packed."""
    out_features, in_features = weight.shape
    groups = weight.float().reshape(out_features, in_features // group_size, group_size)
    # The range always holds 0, so the zero point lies in [0, 15] without clamping.
    low = groups.amin(-1, keepdim=True).clamp(max=0)
    high = groups.amax(-1, keepdim=True).clamp(min=0)
    # Round the fp16 scale up, never down, so the 16 levels still cover the range.
    scales = ((high - low) / AWQ_MAX_INT * FP16_ROUND_UP).clamp(min=FP16_TINY).half()
    step = scales.float()
    zeros = -torch.round(low / step)
    levels = (torch.round(groups / step) + zeros).clamp(0, AWQ_MAX_INT)
    return AwqWeight(
        qweight=_pack_nibbles(levels.reshape(out_features, in_features).t()),
        qzeros=_pack_nibbles(zeros.squeeze(-1).t()),
        scales=scales.squeeze(-1).t().contiguous(),
    )


def dequantize_awq(packed: AwqWeight) -> torch.Tensor:
    """Rebuild the float32 ``[out, in]`` weight that `packed` encodes."""
    levels = _unpack_nibbles(packed.qweight).float()
    zeros = _unpack_nibbles(packed.qzeros).float()
    scales = packed.scales.float()
    group_size = levels.shape[0] // scales.shape[0]
    zeros = zeros.repeat_interleave(group_size, dim=0)
    scales = scales.repeat_interleave(group_size, dim=0)
    return ((levels - zeros) * scales).t().contiguous()


def _pack_nibbles(values: torch.Tensor) -> torch.Tensor:
    """Pack ``[rows, cols]`` 4-bit values into int32 ``[rows, cols / 8]``, AWQ order."""
    rows, cols = values.shape
    nibbles = values.to(torch.int64).reshape(rows, cols // AWQ_PACK, AWQ_PACK)
    nibbles = nibbles.index_select(-1, torch.tensor(AWQ_ORDER))
    words = torch.bitwise_left_shift(nibbles, _nibble_shifts()).sum(-1)
    words = torch.where(words >= 2**31, words - 2**32, words)  # reinterpret as int32
    return words.to(torch.int32).contiguous()


def _unpack_nibbles(words: torch.Tensor) -> torch.Tensor:
    rows, packed_cols = words.shape
    shifted = torch.bitwise_right_shift(words.to(torch.int64).unsqueeze(-1), _nibble_shifts())
    nibbles = torch.bitwise_and(shifted, AWQ_MAX_INT)
    nibbles = nibbles.index_select(-1, torch.tensor(AWQ_REVERSE_ORDER))
    return nibbles.reshape(rows, packed_cols * AWQ_PACK)


def _nibble_shifts() -> torch.Tensor:
    return torch.arange(0, 32, AWQ_BITS, dtype=torch.int64)
