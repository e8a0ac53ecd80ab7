"""A small IMAP4rev1 server for tests, on loopback, in a thread: one mailbox, one user.

Only what ``bounces process --imap`` uses (and imaplib's handshake): CAPABILITY, LOGIN,
SELECT, UID SEARCH UNSEEN, UID FETCH (BODY.PEEK[]), UID STORE +FLAGS, LOGOUT. It
answers as RFC 3501 says, so imaplib parses it; anything else gets BAD.

    with ImapServer("bounces", "secret", {"INBOX": [raw, ...]}) as server:
        ...  # imap://bounces@127.0.0.1:{server.port}/INBOX
        server.flags[uid]  # the flags set by the client
        server.drop_on_fetch = True  # close the connection instead of answering a FETCH
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from typing import Any

__all__ = ["ImapServer"]


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.selected = self.dropped = False
        self.send("* OK [CAPABILITY IMAP4rev1] test server ready")
        while line := self.rfile.readline():
            tag, _, rest = line.decode("utf-8").rstrip("\r\n").partition(" ")
            command, _, args = rest.partition(" ")
            if not self.dispatch(tag, command.upper(), args):
                return

    def send(self, text: str | bytes) -> None:
        self.wfile.write(text if isinstance(text, bytes) else text.encode() + b"\r\n")

    def dispatch(self, tag: str, command: str, args: str) -> bool:
        owner = self.server.owner
        if command == "CAPABILITY":
            self.send("* CAPABILITY IMAP4rev1")
        elif command == "LOGIN":
            user, password = (part.strip('"') for part in args.split(" ", 1))
            if (user, password) != (owner.user, owner.password):
                self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
                return True
        elif command == "SELECT":
            if args.strip('"') not in owner.folders:
                self.send(f"{tag} NO [NONEXISTENT] no such mailbox")
                return True
            self.selected = True
            self.send(f"* {len(owner.messages)} EXISTS")
        elif command == "UID" and self.selected:
            self.uid(tag, args)
            if self.dropped:
                return False
        elif command == "LOGOUT":
            self.send("* BYE")
            self.send(f"{tag} OK LOGOUT completed")
            return False
        else:
            self.send(f"{tag} BAD unknown command")
            return True
        self.send(f"{tag} OK {command} completed")
        return True

    def uid(self, tag: str, args: str) -> None:
        owner = self.server.owner
        verb, _, rest = args.partition(" ")
        if verb.upper() == "SEARCH":
            unseen = [u for u in owner.messages if "\\Seen" not in owner.flags[u]]
            self.send("* SEARCH " + " ".join(str(u) for u in unseen))
        elif verb.upper() == "FETCH":
            if owner.drop_on_fetch:  # the connection drops mid-run
                self.connection.shutdown(socket.SHUT_RDWR)
                self.dropped = True
                return
            uid = int(rest.split(" ", 1)[0])
            body = owner.messages[uid]
            self.send(f"* {uid} FETCH (UID {uid} BODY[] {{{len(body)}}}".encode() + b"\r\n")
            self.send(body + b")\r\n")
        elif verb.upper() == "STORE":
            uid_text, _, flags = rest.partition(" ")
            found = re.findall(r"\\\w+", flags)
            owner.flags[int(uid_text)].update(found)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ImapServer


class ImapServer:
    def __init__(self, user: str, password: str, messages: list[bytes]) -> None:
        self.user, self.password = user, password
        self.folders = {"INBOX"}
        self.drop_on_fetch = False
        self.messages = dict(enumerate(messages, start=1))
        self.flags: dict[int, set[str]] = {uid: set() for uid in self.messages}
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ImapServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
