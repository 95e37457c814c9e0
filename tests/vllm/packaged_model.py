"""The packaged offline model (Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M) as a Hugging Face checkpoint.

vLLM reads safetensors checkpoints, and the only real model available offline is the GGUF file
autotqa ships (assembled and sha256-verified in the user cache). This turns it into a Qwen2
checkpoint vLLM can load: each tensor dequantized with the ``gguf`` package's reference
dequantization (what llama.cpp computes), renamed to the Hugging Face names, stored as bfloat16;
the tokenizer and chat template read from the GGUF's own metadata by transformers. Qwen2 GGUFs
keep the Hugging Face layout of Q/K (no rotary permutation, unlike llama), so names are all that
change.

The export is written once per model hash into the cache (``<cache>/models/hf-<name>-<sha12>``;
written beside and renamed, so an interrupted export never looks complete) and reused after.

Run by hand: ``.venv-vllm/bin/python tests/vllm/packaged_model.py`` prints the directory.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
          "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
          "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def hf_name(gguf_name: str) -> str:
    """``blk.3.attn_q.bias`` -> ``model.layers.3.self_attn.q_proj.bias`` (KeyError if unknown)."""
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.(weight|bias)", gguf_name)
    if m:
        return f"model.layers.{m[1]}.{_BLOCK[m[2]]}.{m[3]}"
    base, kind = gguf_name.rsplit(".", 1)
    return f"{_TOP[base]}.{kind}"


def _field(reader, name: str):  # noqa: ANN001, ANN202 - gguf types
    f = reader.fields[name]
    v = f.parts[f.data[0]]
    return v.tobytes().decode() if v.dtype.kind == "u" and v.dtype.itemsize == 1 else v.tolist()[0]


def export(gguf_path: Path, out: Path) -> Path:
    """Write a Qwen2 Hugging Face checkpoint of ``gguf_path`` into ``out`` (must not exist)."""
    import numpy as np
    import torch
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    reader = GGUFReader(gguf_path)
    arch = _field(reader, "general.architecture")
    if arch != "qwen2":
        raise ValueError(f"{gguf_path.name}: architecture {arch!r}, this export handles qwen2 only")
    tensors = {}
    for t in reader.tensors:
        shape = [int(x) for x in reversed(t.shape.tolist())]  # GGUF lists dims innermost first
        values = np.array(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
        tensors[hf_name(t.name)] = torch.from_numpy(values).to(torch.bfloat16)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        save_file(tensors, tmp / "model.safetensors", metadata={"format": "pt"})
        tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        tok.save_pretrained(tmp)
        config = {
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
            "hidden_size": _field(reader, "qwen2.embedding_length"),
            "intermediate_size": _field(reader, "qwen2.feed_forward_length"),
            "num_hidden_layers": _field(reader, "qwen2.block_count"),
            "num_attention_heads": _field(reader, "qwen2.attention.head_count"),
            "num_key_value_heads": _field(reader, "qwen2.attention.head_count_kv"),
            "max_position_embeddings": _field(reader, "qwen2.context_length"),
            "rms_norm_eps": _field(reader, "qwen2.attention.layer_norm_rms_epsilon"),
            "rope_theta": _field(reader, "qwen2.rope.freq_base"),
            "vocab_size": int(tensors["model.embed_tokens.weight"].shape[0]),
            "tie_word_embeddings": "lm_head.weight" not in tensors,
            "bos_token_id": tok.convert_tokens_to_ids("<|endoftext|>"),
            "eos_token_id": tok.convert_tokens_to_ids("<|im_end|>"),
            "torch_dtype": "bfloat16", "use_sliding_window": False, "attention_dropout": 0.0,
            "use_cache": True,
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def packaged_hf_model(cache_dir: Path | None = None) -> Path:
    """The packaged model as a Hugging Face directory, exported on first use."""
    from autotqa.serving.model_store import (
        QWEN_0_5B,
        default_cache_dir,
        ensure_packaged,
    )

    gguf_path = ensure_packaged(QWEN_0_5B, cache_dir)
    out = (cache_dir or default_cache_dir()) / "models" / f"hf-{Path(QWEN_0_5B.filename).stem}-{QWEN_0_5B.sha256[:12]}"
    if (out / "config.json").is_file():
        return out
    return export(gguf_path, out)


if __name__ == "__main__":
    print(packaged_hf_model())
