"""``autotqa chat`` in a real pseudo-terminal: prompt_toolkit line editing, the live spinner, Ctrl-C
and Ctrl-D as a person would press them.

The scripted engine (a test double fed by ``AUTOTQA_SCRIPTED_REPLIES``) stands in for the model,
except in the one ``model`` test, which runs the real embedded 0.5B model.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

REPO = Path(__file__).resolve().parent.parent
AUTOTQA = Path(sys.executable).parent / "autotqa"
DEMO = REPO / "datasets" / "demo"
REPLIES = REPO / "tests" / "data" / "chat" / "demo.json"
PROMPT = "autotqa>"  # prompt_toolkit draws the trailing space as a cursor move


_ANSI = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"


def loose(text: str) -> str:
    """A regex for ``text`` as it appears on screen: styling codes may sit between any characters
    (rich styles ``values:`` and the value apart even with NO_COLOR, which only drops colours)."""
    return _ANSI.join(re.escape(ch) for ch in text)


def see(child: pexpect.spawn, text: str) -> None:
    child.expect(loose(text))


def spawn(tmp_path: Path, replies: Path | None, timeout: float = 60) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTQA_")}
    env.update({"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
                "XDG_CACHE_HOME": env.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),
                "TERM": "xterm", "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1", "COLUMNS": "160"})
    if replies is not None:
        # The reply scripts are Planner/Engineer/Critic loops: no candidate vote before them.
        env.update({"AUTOTQA_ENGINE": "scripted", "AUTOTQA_SCRIPTED_REPLIES": str(replies),
                    "AUTOTQA_AGENTS__CANDIDATES": "1"})
    child = pexpect.spawn(str(AUTOTQA), ["chat", str(DEMO)], env=env, cwd=str(tmp_path), encoding="utf-8",
                          timeout=timeout, dimensions=(50, 160))
    child.logfile_read = open(tmp_path / "transcript.txt", "w", encoding="utf-8")  # noqa: SIM115
    return child


def ask(child: pexpect.spawn, line: str) -> None:
    child.expect_exact(PROMPT)
    child.send(line + "\r")


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_two_questions_sql_and_exit(tmp_path: Path) -> None:
    child = spawn(tmp_path, REPLIES)
    see(child, "tables: customers, order_items, orders, products")
    ask(child, "How many customers are there?")
    see(child, "values: 80")
    ask(child, "and from Germany?")
    see(child, "question: and from Germany?")  # edited from the earlier query, not paraphrased
    see(child, "values: 33")
    ask(child, "/sql")
    see(child, "SELECT count(*) AS n_customers FROM customers WHERE country = 'Germany'")
    ask(child, "/exit")
    assert finish(child) == 0
    history = (tmp_path / "data" / "autotqa" / "chat_history").read_text(encoding="utf-8")
    assert [ln for ln in history.splitlines() if ln.startswith("+")] == [
        "+How many customers are there?", "+and from Germany?", "+/sql", "+/exit"]


def test_ctrl_c_cancels_a_question_and_the_chat_goes_on(tmp_path: Path) -> None:
    data = json.loads(REPLIES.read_text(encoding="utf-8"))
    planner = data["by_agent"]["planner"]
    planner.insert(0, {"text": planner[0], "delay_s": 60})
    replies = tmp_path / "slow.json"
    replies.write_text(json.dumps(data), encoding="utf-8")
    child = spawn(tmp_path, replies)
    ask(child, "Which customers ordered the most?")
    see(child, "planner: planning")  # the spinner names the agent at work
    child.sendintr()
    see(child, "cancelled")
    ask(child, "How many customers are there?")
    see(child, "values: 80")
    child.expect_exact(PROMPT)
    child.sendcontrol("c")  # Ctrl-C at the prompt only clears the line
    child.sendeof()  # Ctrl-D leaves
    assert finish(child) == 0


def test_unknown_command_gets_a_hint(tmp_path: Path) -> None:
    child = spawn(tmp_path, REPLIES)
    ask(child, "/frobnicate")
    see(child, "unknown command /frobnicate: type /help for the list")
    ask(child, "/exit")
    assert finish(child) == 0


@pytest.mark.model
@pytest.mark.slow
def test_real_model_answers_a_demo_question(tmp_path: Path) -> None:
    child = spawn(tmp_path, None, timeout=600)
    ask(child, "How many customers are there?")
    see(child, "Answer")
    # Whatever the small model concludes, the chat shows an answer line and stays usable.
    child.expect("|".join(loose(t) for t in ("values: ", "No supported answer", "cannot answer")))
    ask(child, "/exit")
    assert finish(child) == 0
