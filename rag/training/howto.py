"""Synthetic how-to pages for the verifier: invented command-line tools, what each command does,
and sentences that pair a task with a command, rightly or not.

HaluEval, the only claim data the verifier may train on, has no commands, and the verifier
trained on it alone cannot tell "On Unix, run `source env/bin/activate`." from the same
sentence with the page's Windows command or its `deactivate`: every command is in the page,
so word overlap says nothing. What decides is which task and platform the page gives each
command for. These pages teach that binding. Tools, tasks and arguments are drawn at random
from the lists below (no real tool's documentation is read, nor any evaluation set).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_TOOLS = ["kestrel", "cedar", "quarry", "lumen", "tidal", "ember", "onyx", "vertex", "willow", "zephyr",
          "harbor", "falcon", "prism", "orbit", "sierra", "juniper", "granite", "meridian", "beacon", "atlas"]
_NAMES = ["my-app", "demo", "site", "backend", "tutorial-env", "project1", "notes", "api", "web", "tools"]
_PACKAGES = ["requests", "numpy", "left-pad", "colorama", "httpx", "pyyaml", "rich", "attrs", "toml", "lxml"]

# (what it does, as "To ..."; the command after the tool's name, with {name} / {package} / {port})
_TASKS: list[tuple[str, str]] = [
    ("create a new project", "init {name}"), ("install a package", "install {package}"),
    ("remove a package", "uninstall {package}"), ("list the installed packages", "list"),
    ("upgrade a package", "install --upgrade {package}"), ("start the development server", "serve --port {port}"),
    ("build the project", "build --release"), ("run the tests", "test --verbose"),
    ("show the version", "--version"), ("check the configuration", "config check"),
    ("delete the build files", "clean --all"), ("publish a release", "publish --tag v{port}"),
    ("create an environment", "env create {name}"), ("activate the environment", "env activate {name}"),
    ("deactivate the environment", "env deactivate"), ("update the package index", "update"),
    ("search for a package", "search {package}"), ("print the help", "help"),
    ("export the requirements", "freeze > requirements.txt"), ("log in", "login --user {name}"),
]
_PLATFORMS = [("On Windows", "{tool}.exe {command}"), ("On Unix or macOS", "{tool} {command}"),
              ("On Linux", "./{tool} {command}")]


@dataclass(frozen=True)
class Claim:
    passage: str
    question: str  # "" for a plain statement
    sentence: str
    label: int  # 1: the passage gives this command for this task (and platform)
    kind: str


def claims(n: int, seed: int = 0) -> list[Claim]:
    """Two claims for each of `n` fresh pages: a right pairing, and a wrong one (another task's or
    platform's command from the same page, a changed command, or a task the page lacks). As many
    supported as not: trained with three wrong claims to one right, the verifier learnt that a
    passage looking like documentation supports little, and rejected most right answers over the
    demo corpus (4 of 37 right and cited, against 30)."""
    rng = random.Random(seed)
    return [c for _ in range(n) for c in _page_claims(rng)]


def _page_claims(rng: random.Random) -> list[Claim]:
    tool = rng.choice(_TOOLS)
    chosen = rng.sample(_TASKS, rng.randint(3, 5))
    shown, missing = chosen[:-1], chosen[-1]
    fill = {"name": rng.choice(_NAMES), "package": rng.choice(_PACKAGES), "port": str(rng.randint(2, 9000))}
    commands = [f"{tool} {command.format(**fill)}" for _, command in shown]
    split = rng.randrange(len(shown)) if rng.random() < 0.4 else -1  # one task given per platform
    platforms = rng.sample(_PLATFORMS, 2)
    per_platform = [p.format(tool=tool, command=shown[split][1].format(**fill)) for _, p in platforms]
    tasks = [task for task, _ in shown]
    blocks = [_platform_block(task, platforms, per_platform, rng) if i == split else _block(task, command, rng)
              for i, (task, command) in enumerate(zip(tasks, commands, strict=True))]
    title = f"# {tool.capitalize()} {rng.choice(['guide', 'quick start', 'usage', 'reference'])}"
    passage = "\n\n".join([title, *blocks])
    pick = rng.randrange(len(shown))
    task, command = shown[pick][0], commands[pick]
    other = rng.choice([c for i, c in enumerate(commands) if i != pick] or [f"{tool} help"])
    question = f"How do I {task} with {tool}?" if rng.random() < 0.7 else ""
    out = [Claim(passage, question, _say(task, command, rng), 1, "command"),
           Claim(passage, question, _say(task, other, rng), 0, "other_command"),
           Claim(passage, question, _say(task, _changed(command, tool, passage, rng), rng), 0, "changed_command"),
           Claim(passage, f"How do I {missing[0]} with {tool}?", _say(missing[0], rng.choice(commands), rng), 0,
                 "missing_task")]
    if split >= 0:
        (where, _), right = platforms[0], per_platform[0]
        asked = f"How do I {tasks[split]} with {tool}?" if question else ""
        out += [Claim(passage, asked, f"{where}, run `{right}`.", 1, "platform_command"),
                Claim(passage, asked, f"{where}, run `{per_platform[1]}`.", 0, "other_platform")]
    supported = [c for c in out if c.label]
    return [rng.choice(supported), rng.choice([c for c in out if not c.label])]  # balanced: see claims()


def _block(task: str, command: str, rng: random.Random) -> str:
    form = rng.randrange(4)
    if form == 0:
        return f"To {task}, run:\n\n```bash\n$ {command}\n```"
    if form == 1:
        return f"You can {task} with `{command}`."
    if form == 2:
        return f"Use the following command to {task}:\n\n    {command}"
    return f"## {task[0].upper()}{task[1:]}\n\n```\n{command}\n```"


def _platform_block(task: str, platforms: list[tuple[str, str]], commands: list[str], rng: random.Random) -> str:
    lead = f"To {task}:" if rng.random() < 0.5 else f"Once it is set up, you may {task}."
    steps = [f"{where}, run:\n\n```\n{c}\n```" for (where, _), c in zip(platforms, commands, strict=True)]
    return "\n\n".join([lead, *steps])


def _say(task: str, command: str, rng: random.Random) -> str:
    return rng.choice([f"To {task}, run `{command}`.", f"Run `{command}` to {task}.",
                       f"You can {task} by running `{command}`.",
                       f"To {task}, run the following command:\n```bash\n{command}\n```",
                       f"1. Run `{command}` to {task}."])


def _changed(command: str, tool: str, passage: str, rng: random.Random) -> str:
    """`command` with one of its words or its tool replaced: a command the page does not hold."""
    words = command.split()
    if len(words) > 1 and rng.random() < 0.7:
        at = rng.randrange(1, len(words))
        options = [w for _, c in _TASKS for w in c.split() if "{" not in w and w not in words] + _PACKAGES
        words[at] = rng.choice(options)
        if " ".join(words) not in passage:
            return " ".join(words)
    return command.replace(tool, rng.choice([t for t in _TOOLS if t != tool]), 1)
