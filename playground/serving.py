"""Starting the web server: the app's own messages instead of Gradio's.

Gradio's advice is written for people calling `launch()` (a busy port says "set
GRADIO_SERVER_PORT or pass server_port to launch()", a local start says "set share=True in
launch()"); users of this app have `--port` and `--share`. So the port is checked first, Gradio
is started quietly, and the app prints the addresses itself.
"""
from __future__ import annotations

import errno
import socket
import sys
from typing import Any

from playground.config import Settings
from playground.errors import PlaygroundError


def port_problem(host: str, port: int) -> str | None:
    """Why (host, port) cannot be listened on, or None when it is free.

    The probe sets SO_REUSEADDR like uvicorn does, so a port in TIME_WAIT after a restart counts
    as free while a port another server listens on does not.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"the address {host} does not resolve ({exc.strerror or exc}); pass --host 127.0.0.1"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        if sys.platform != "win32":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
                return (f"port {port} on {host} is already in use (another playground or program "
                        f"listens there): start with another port, e.g. `python app.py --port {port + 1}`, "
                        "or stop the other program")
            if exc.errno == errno.EACCES:
                return f"no permission to listen on port {port}: use a port above 1023, e.g. --port 7860"
            return f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another --host or --port"
    return None


def launch(demo: Any, settings: Settings, login: bool = False, **launch_args: Any) -> None:
    """Start the Gradio app on settings.host:port and block until it is stopped (Ctrl+C).

    `login`: the page asks for a name and password (said with the addresses)."""
    problem = port_problem(settings.host, settings.port)
    if problem:
        raise PlaygroundError(problem)
    try:
        demo.launch(server_name=settings.host, server_port=settings.port, share=settings.share,
                    quiet=True, prevent_thread_lock=True, **launch_args)
    except OSError as exc:   # lost a race for the port after the check
        raise PlaygroundError(f"cannot start the web server on {settings.host}:{settings.port}: "
                              f"{exc.strerror or exc}. Start with another port, e.g. "
                              f"`python app.py --port {settings.port + 1}`") from None
    for line in address_lines(settings.host, settings.port, login):
        print(line, file=sys.stderr)
    share_url = getattr(demo, "share_url", None)
    if settings.share:
        print(f"Public link: {share_url}" if share_url else
              "The public share link could not be created (see the messages above).", file=sys.stderr)
    demo.block_thread()


def address_lines(host: str, port: int, login: bool) -> list[str]:
    """What to print once the server listens: the address to open here and, bound to every
    interface, the ones teammates use (this machine's name and its addresses)."""
    needs = ", behind a login" if login else ""
    if host not in ("0.0.0.0", "::"):
        return [f"The playground runs at http://{host}:{port}{needs} (Ctrl+C stops it)"]
    lines = [f"The playground runs at http://127.0.0.1:{port} on this machine{needs} (Ctrl+C stops it)"]
    others = [f"http://{name}:{port}" for name in machine_addresses()]
    if others:
        lines.append("Teammates open " + " or ".join(others)
                     + (" and sign in with the name and password you gave them" if login else ""))
    return lines


def machine_addresses() -> list[str]:
    """This machine's host name and its non-loopback IPv4 addresses, the ones others can reach.

    The outgoing address is found by "connecting" a UDP socket (nothing is sent); the host name's
    own addresses are added. Loopback is left out: it is this machine only."""
    name = socket.gethostname()
    found: list[str] = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))      # TEST-NET-1: never routed, nothing sent
            found.append(probe.getsockname()[0])
    except OSError:
        pass
    try:
        found += [info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)]
    except OSError:
        pass
    addresses = [a for a in dict.fromkeys(found) if not a.startswith("127.") and a != "0.0.0.0"]
    return ([name] if name and name != "localhost" else []) + addresses


def prepare_default_model(ctx: Any) -> None:
    """Build the default model's F16 copy now, with progress on the console, if it is not built:
    the first question in the browser then starts at once. A failure is a warning (the shipped
    Q4_1 entry still works), never a stop."""
    spec = ctx.catalog.models.get(ctx.settings.default_model)
    if spec is None or spec.available or spec.built_from is None:
        return
    print(f"Building {spec.id} once into {ctx.settings.cache_dir} (an F16 copy of the bundled model, "
          "a few seconds)…", file=sys.stderr)
    shown = {"step": -1}

    def report(message: str, fraction: float) -> None:
        step = int(fraction * 10)
        if step != shown["step"]:
            shown["step"] = step
            print(f"  {message}", file=sys.stderr, flush=True)

    try:
        ctx.ensure_local(spec, progress=report)
    except PlaygroundError as exc:
        print(f"warning: {exc}", file=sys.stderr)
