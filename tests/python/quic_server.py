"""An aioquic QUIC server for the tests: listens on the address and port given, with the
certificate and key given, accepts connections and does nothing with them. Prints "ready"
once it listens; runs until killed. A QUIC stack the project did not write, for probes that
any QUIC server must answer (Version Negotiation for an unknown version).

Usage: quic_server.py ADDRESS PORT CERT_PEM KEY_PEM
"""

import asyncio
import sys

from aioquic.asyncio import serve
from aioquic.quic.configuration import QuicConfiguration


async def main(address: str, port: int, cert: str, key: str) -> None:
    configuration = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    configuration.load_cert_chain(cert, key)
    await serve(address, port, configuration=configuration)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: quic_server.py ADDRESS PORT CERT_PEM KEY_PEM")
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
