"""llama.cpp's own server (the `xllamacpp` wheel runs its C++ server code) on a GGUF file,
for the remote engine's tests: `python -m tests.engine.llamacpp_server FILE N_CTX` prints
`listening http://127.0.0.1:PORT` once it serves, and serves until its stdin closes."""

from __future__ import annotations

import socket
import sys


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(path: str, n_ctx: int) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = n_ctx
    params.n_parallel = 1
    params.endpoint_props = True
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.port = free_port()
    server = xllamacpp.Server(params)
    print(f"listening {server.listening_address}", flush=True)
    sys.stdin.read()  # until the test closes it
    del server


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
