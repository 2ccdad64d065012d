"""A reverse proxy on 127.0.0.1 that adds the API key to every request.

`make screenshot` points headless Chromium at it: a browser cannot be told
to send a header, and the dashboard answers only requests with a key, as
it would behind an operator's proxy. Every request gets `X-Api-Key` and
`Connection: close`. Usage: key-proxy.py TARGET_PORT (key on stdin); it
prints the port it listens on, then serves until killed.
"""

import socket
import sys
import threading


def forward(client: socket.socket, target: int, key: bytes) -> None:
    with client:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(4096)
            if not chunk or len(data) > 65536:
                return
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        kept = [
            line
            for line in lines[1:]
            if line.split(b":", 1)[0].strip().lower()
            not in (b"connection", b"x-api-key", b"keep-alive")
        ]
        request = b"\r\n".join(
            [lines[0], b"X-Api-Key: " + key, b"Connection: close", *kept]
        )
        with socket.create_connection(("127.0.0.1", target)) as upstream:
            upstream.sendall(request + b"\r\n\r\n" + rest)
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                client.sendall(chunk)


def main() -> None:
    target = int(sys.argv[1])
    key = sys.stdin.readline().strip().encode()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    print(server.getsockname()[1], flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=forward, args=(client, target, key), daemon=True).start()


if __name__ == "__main__":
    main()
