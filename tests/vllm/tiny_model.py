"""Build a tiny random-weight Qwen2 model and a byte-level tokenizer on disk, offline.

Why generate instead of download: tests must run without a hub (CI has no network to one) and
the repo must stay small. A byte-level BPE vocabulary (256 byte tokens + the ChatML specials) lets
vLLM's grammar backend express any JSON, and makes token counts predictable: one ASCII character
is one token, so "a prefix longer than one KV block" is a length in characters.

The weights are random, so replies are gibberish; what tests check is what the *engine*
guarantees regardless of weights: grammar-valid JSON, stop strings, priority order, prefix reuse.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# The Qwen2 ChatML template, reduced to what layout.to_messages produces (system + user turns).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _write_tokenizer(out: Path) -> int:
    """Write tokenizer.json + tokenizer_config.json; return the vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())  # the 256 printable stand-ins for raw bytes
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.save(str(out / "tokenizer.json"))
    special_ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 8192,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {
            str(i): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                     "normalized": False, "single_word": False}
            for t, i in special_ids.items()
        },
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}))
    return tok.get_vocab_size()


def make_tiny_qwen2(out: str | Path, *, seed: int = 0) -> Path:
    """Create the model directory ``out`` (config, safetensors weights, tokenizer) and return it.

    Head size 32 because vLLM's CPU attention kernels support head sizes >= 32 only.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tokenizer(out)
    eos_id = vocab_size - 1  # <|im_end|> was added last
    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=eos_id,
        pad_token_id=vocab_size - 3, torch_dtype="float32")
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(eos_token_id=eos_id, pad_token_id=vocab_size - 3).save_pretrained(out)
    return out


if __name__ == "__main__":
    import sys

    print(make_tiny_qwen2(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny_qwen2"))
