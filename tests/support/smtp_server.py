#!/usr/bin/python3
"""A real SMTP server for the email notifier tests (aiosmtpd, Debian's
python3-aiosmtpd, installed by scripts/setup-test-env for the system
Python, hence /usr/bin/python3).

    smtp_server.py DIRECTORY [PORT]

Listens on PORT (default: a free port) of 127.0.0.1 and prints `listening PORT` once it
accepts connections. Each message accepted is saved as DIRECTORY/NNNN.eml:
a first line of JSON with the envelope (`mail_from`, `rcpt_tos`), then the
message as received. The file is written under another name and renamed,
so a reader never sees half of it, and before the server answers 250, so
once the client has its answer the file is there.

Recipients whose local part starts with `bounce` are refused with 550
(permanent), `defer` with 451 (transient). The server exits when its
standard input closes, so it never outlives the test that started it.
"""

import asyncio
import json
import os
import sys
import threading

from aiosmtpd.smtp import SMTP


class Saver:
    def __init__(self, directory):
        self.directory = directory
        # A server restarted on the same directory goes on numbering.
        self.count = len([n for n in os.listdir(directory) if n.endswith(".eml")])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("defer"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.directory, f"{self.count:04d}.eml")
        head = json.dumps({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos})
        with open(path + ".tmp", "wb") as f:
            f.write(head.encode() + b"\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 OK saved"


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


async def main():
    saver = Saver(sys.argv[1])
    loop = asyncio.get_running_loop()
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = await loop.create_server(lambda: SMTP(saver), "127.0.0.1", port, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    asyncio.run(main())
