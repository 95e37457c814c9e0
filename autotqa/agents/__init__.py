"""The five agents. Four talk to the model through the serving layer; the Executor runs code.

- ``user.UserAgent``: the inquiry (+ chat history) as one self-contained question; flags
  questions the tables cannot answer; no LLM call for a plain question without references.
- ``planner.PlannerAgent``: a short plan of steps (tables, columns, operation, dependencies).
- ``engineer.EngineerAgent``: DuckDB SQL (or pandas) per step, in a fenced block cut at the closing
  fence; repairs from the executor's error.
- ``executor.ExecutorAgent``: runs the code, posts the (capped) result or the error.
- ``critic.CriticAgent``: deterministic checks first, then accept / revise / replan.

Prompts are Jinja files in ``prompts/`` (StrictUndefined). Every request is built by
``base.RunContext.request``: common header + schema + board transcript + the role's short tail.
"""
