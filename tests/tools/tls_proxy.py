"""A TLS-terminating TCP proxy for tests: listens on 127.0.0.1:<listen> with
cert.pem/key.pem from <dir> and forwards to 127.0.0.1:<target> in clear.
Usage: tls_proxy.py <listen> <target> <dir>"""
import os
import socket, ssl, sys, threading
listen, target = int(sys.argv[1]), int(sys.argv[2])
os.chdir(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain("cert.pem", "key.pem")
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); srv.bind(("127.0.0.1", listen)); srv.listen(16)
def pipe(a, b):
    try:
        while (d := a.recv(65536)): b.sendall(d)
    except Exception: pass
    finally:
        for s in (a, b):
            try: s.close()
            except Exception: pass
while True:
    c, _ = srv.accept()
    try: t = ctx.wrap_socket(c, server_side=True)
    except Exception: c.close(); continue
    u = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=pipe, args=(t, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, t), daemon=True).start()
