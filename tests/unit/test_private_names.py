"""The names of aiosmtpd and aioimaplib that maild relies on without their promise
(maild/intake/private_names.py) exist in the installed versions, on real objects: an SMTP
session on a loopback socket, an IMAP client. And the adapters use no such name that the
list leaves out, so the list is the whole of what an upgrade has to be checked for."""

from __future__ import annotations

import ast
import asyncio
import importlib
import socket
from pathlib import Path
from typing import Any

import pytest

from maild.intake.private_names import PRIVATE_NAMES, PrivateName

REPO = Path(__file__).resolve().parents[2]
ADAPTERS = ("maild/intake/smtp.py", "maild/intake/smtp_data.py", "maild/intake/imap.py")
INTERNAL_MODULES = ("aioimaplib.aioimaplib",)  # the package re-exports it with `import *`, not all of it


def resolve(owner: str) -> Any:
    module, _, cls = owner.partition(":")
    found = importlib.import_module(module)
    return getattr(found, cls) if cls else found


class Handler:
    """An aiosmtpd handler that takes every message (no hooks: aiosmtpd's defaults)."""


async def smtp_session() -> Any:
    """A real aiosmtpd protocol instance, its session opened by a client over loopback."""
    from aiosmtpd.smtp import SMTP

    made: list[Any] = []

    def factory() -> Any:
        made.append(SMTP(Handler(), hostname="maild.test", timeout=30))
        return made[-1]

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"220")
        writer.write(b"QUIT\r\n")
        await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        return made[0]
    finally:
        server.close()
        await server.wait_closed()


async def imap_client() -> Any:
    """A real aioimaplib client, aimed at a port where nothing listens (it connects on creation)."""
    import aioimaplib

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = aioimaplib.IMAP4(host="127.0.0.1", port=port, timeout=5)
    task = client._client_task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return client


INSTANCES = {"aiosmtpd.smtp:SMTP": smtp_session, "aioimaplib.aioimaplib:IMAP4": imap_client}


@pytest.mark.parametrize("private", PRIVATE_NAMES, ids=[f"{p.owner}.{p.name}" for p in PRIVATE_NAMES])
def test_each_private_name_exists_in_the_installed_package(private: PrivateName) -> None:
    if private.on == "instance":
        target = asyncio.run(INSTANCES[private.owner]())
        assert isinstance(target, resolve(private.owner))
    else:
        target = resolve(private.owner)
    assert hasattr(target, private.name), f"{private.owner} has no {private.name} any more (used by {private.used_by})"
    if private.on == "class" and private.owner.startswith("aiosmtpd"):
        assert callable(getattr(target, private.name))


def foreign_private_uses(path: Path) -> set[tuple[str, str]]:
    """(module, name) or ("", _name) for what the adapter takes that its libraries keep private:
    names imported from a module under a public package (``aioimaplib.aioimaplib``), and
    underscore attributes that the module itself does not define (or reaches through super())."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                    defined.add(target.attr)
    used: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in INTERNAL_MODULES:
            used.update((node.module, alias.name) for alias in node.names)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            through_super = (isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                             and node.value.func.id == "super")
            if through_super or node.attr not in defined:
                used.add(("", node.attr))
    return used


def test_the_list_is_what_the_adapters_use() -> None:
    used = set().union(*(foreign_private_uses(REPO / path) for path in ADAPTERS))
    listed = {(p.owner.partition(":")[0], p.name) if p.on == "module" else ("", p.name) for p in PRIVATE_NAMES}
    assert used - listed == set(), "add these to maild/intake/private_names.py"
    assert listed - used == set(), "no adapter uses these any more: take them off the list"


def test_the_scan_sees_a_private_use(tmp_path: Path) -> None:
    source = "from aioimaplib.aioimaplib import Command\nclass A(B):\n    def f(self):\n        self._own = 1\n" \
             "        super()._hook()\n        return self.client._task, self._own\n"
    path = tmp_path / "adapter.py"
    path.write_text(source, encoding="utf-8")
    assert foreign_private_uses(path) == {("aioimaplib.aioimaplib", "Command"), ("", "_hook"), ("", "_task")}


def test_pyproject_caps_the_packages_whose_private_names_maild_uses() -> None:
    import tomllib

    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    for package in {p.owner.split(".")[0] for p in PRIVATE_NAMES}:
        spec = next(d for d in dependencies if d.lower().startswith(package))
        assert "<" in spec, f"{spec}: give it an upper bound (it is in maild/intake/private_names.py)"
