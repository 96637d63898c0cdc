#!/usr/bin/env python3
"""An aioquic (1.7.2) HTTP/3 client that resumes: the tests' second, independent QUIC stack.

Each round makes two connections to the same server:

1. from local port FIRST_PORT + round: GET /, then wait until the server has sent a
   NEW_TOKEN token and a TLS session ticket, and close;
2. from local port SECOND_PORT + round: with that token in its Initial (unless --no-token)
   and that session ticket, the GET sent at once, before the handshake completes (as 0-RTT
   data when the ticket allows early data), and wait for the answer.

One JSON object per round goes to stdout:

    {"round": 0, "first": NAME, "second": NAME, "token_sent": BOOL, "token": HEX or null,
     "resumed": BOOL, "early_data_offered": BOOL, "early_data_accepted": BOOL}

NAME is the body of the server's answer without its newline; "resumed" is TLS resumption
of the second connection, "early_data_offered" whether the ticket allowed 0-RTT data (so the
GET went as 0-RTT), "early_data_accepted" whether the server took it.

Every wait is bounded. Bad arguments: one line on stderr, exit status 2. Any failure (no
answer, no token, no ticket, a status other than 200, a timeout): one line, exit status 1.
"""

import argparse
import asyncio
import json
import sys
from typing import NoReturn

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent
from aioquic.tls import SessionTicket

PROGRAM = "h3_resume_client"
# Seconds any one step may take (a handshake, an answer, a token): generous for loaded CI.
STEP_TIMEOUT = 5.0
# Seconds a silent connection lives: an unresponsive server ends a connection soon.
IDLE_TIMEOUT = 5.0
# Seconds one whole connection may take, from its first packet to its close.
CONNECTION_TIMEOUT = 15.0


class Failure(Exception):
    """Something the server should have done did not happen."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one line on bad arguments (its default adds the usage)."""

    def error(self, message: str) -> NoReturn:
        print(f"{PROGRAM}: {message}", file=sys.stderr)
        sys.exit(2)


class H3Client(QuicConnectionProtocol):
    """One HTTP/3 connection that records its handshake and answers GETs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic)
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[HandshakeCompleted] = quiet(loop.create_future())
        self._answers: dict[int, tuple[asyncio.Future, dict]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted) and not self.handshake.done():
            self.handshake.set_result(event)
        if isinstance(event, ConnectionTerminated):
            # Fail every wait at once, with the server's reason, rather than at a timeout.
            failure = Failure(
                f"connection closed (error {event.error_code:#x}): {event.reason_phrase!r}"
            )
            pending = [self.handshake] + [done for done, _ in self._answers.values()]
            for waiter in pending:
                if not waiter.done():
                    waiter.set_exception(failure)
        for h3_event in self._h3.handle_event(event):
            self._h3_event(h3_event)

    def _h3_event(self, event: H3Event) -> None:
        if not isinstance(event, (HeadersReceived, DataReceived)):
            return
        entry = self._answers.get(event.stream_id)
        if entry is None:
            return
        done, answer = entry
        if isinstance(event, HeadersReceived):
            answer["headers"] = dict(event.headers)
        else:
            answer["body"] += event.data
        if event.stream_ended and not done.done():
            done.set_result(answer)

    async def get(self, authority: str) -> str:
        """GET / now; the body of a 200 answer, as text."""
        stream_id = self._quic.get_next_available_stream_id()
        done = quiet(asyncio.get_running_loop().create_future())
        self._answers[stream_id] = (done, {"headers": {}, "body": b""})
        self._h3.send_headers(
            stream_id,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", b"/"),
            ],
            end_stream=True,
        )
        self.transmit()
        answer = await bounded(done, f"an answer to GET on stream {stream_id}")
        status = answer["headers"].get(b":status")
        if status != b"200":
            raise Failure(f"GET / answered with status {status!r}")
        return answer["body"].decode(errors="replace").rstrip("\n")


def quiet(future: asyncio.Future) -> asyncio.Future:
    """`future`, its failure reported by whoever awaits it (a connection's end fails every
    waiter, some of which nobody awaits any more), not by asyncio at exit."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


async def bounded(awaitable, what: str, timeout: float = STEP_TIMEOUT):
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise Failure(f"no {what} within {timeout} s") from None


def configuration(args, ticket: SessionTicket | None, token: bytes) -> QuicConfiguration:
    config = QuicConfiguration(
        alpn_protocols=H3_ALPN,
        is_client=True,
        server_name=args.server_name,
        idle_timeout=IDLE_TIMEOUT,
        session_ticket=ticket,
        token=token,
    )
    config.load_verify_locations(cafile=args.ca)
    return config


async def first_connection(args, round_: int) -> tuple[str, SessionTicket, bytes]:
    """Connection 1: its answer, the session ticket and the NEW_TOKEN token it got."""
    ticket_received = asyncio.Event()
    token_received = asyncio.Event()
    kept: dict = {"ticket": None, "token": b""}

    def keep_ticket(ticket: SessionTicket) -> None:
        kept["ticket"] = ticket
        ticket_received.set()

    def keep_token(token: bytes) -> None:
        kept["token"] = token
        token_received.set()

    async with connect(
        args.host,
        args.port,
        configuration=configuration(args, None, b""),
        create_protocol=H3Client,
        session_ticket_handler=keep_ticket,
        token_handler=keep_token,
        wait_connected=False,
        local_port=args.first_port + round_,
    ) as client:
        name = await client.get(args.server_name)
        await bounded(client.handshake, "handshake")
        await bounded(ticket_received.wait(), "session ticket")
        if not args.no_token:
            await bounded(token_received.wait(), "NEW_TOKEN token")
    return name, kept["ticket"], kept["token"]


async def second_connection(args, round_: int, ticket: SessionTicket, token: bytes) -> dict:
    """Connection 2: resumes with `ticket` and `token`, the GET sent before the handshake
    completes (0-RTT data when the ticket allows it)."""
    async with connect(
        args.host,
        args.port,
        configuration=configuration(args, ticket, token),
        create_protocol=H3Client,
        wait_connected=False,
        local_port=args.second_port + round_,
    ) as client:
        name = await client.get(args.server_name)
        handshake = await bounded(client.handshake, "handshake")
    return {
        "second": name,
        "resumed": handshake.session_resumed,
        "early_data_accepted": handshake.early_data_accepted,
    }


async def rounds(args) -> None:
    for round_ in range(args.rounds):
        first, ticket, token = await bounded(
            first_connection(args, round_), "end of the first connection", CONNECTION_TIMEOUT
        )
        sent = b"" if args.no_token else token
        second = await bounded(
            second_connection(args, round_, ticket, sent),
            "end of the second connection",
            CONNECTION_TIMEOUT,
        )
        line = {
            "round": round_,
            "first": first,
            "token_sent": bool(sent),
            "token": sent.hex() if sent else None,
            "early_data_offered": ticket.max_early_data_size is not None,
            **second,
        }
        print(json.dumps(line), flush=True)


def host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    host = host.removeprefix("[").removesuffix("]")
    return host, port_number(port)


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 1..65535")
    return port


def main() -> int:
    parser = ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", required=True, type=host_port, metavar="HOST:PORT")
    parser.add_argument("--server-name", required=True, help="TLS server name (SNI)")
    parser.add_argument("--ca", required=True, metavar="PEM", help="certificate to trust")
    parser.add_argument("--first-port", required=True, type=port_number, metavar="PORT")
    parser.add_argument("--second-port", required=True, type=port_number, metavar="PORT")
    parser.add_argument("--rounds", type=int, default=1, metavar="N")
    parser.add_argument(
        "--no-token", action="store_true", help="do not send the NEW_TOKEN token back"
    )
    args = parser.parse_args()
    args.host, args.port = args.connect
    if not 1 <= args.rounds <= 1000:
        parser.error(f"--rounds {args.rounds} is out of range 1..1000")
    for name, base in (("--first-port", args.first_port), ("--second-port", args.second_port)):
        if base + args.rounds - 1 > 65535:
            parser.error(f"{name} {base} leaves no room for {args.rounds} rounds")
    if abs(args.first_port - args.second_port) < args.rounds:
        parser.error("the first and second connections' port ranges overlap")
    try:
        with open(args.ca, "rb"):
            pass
    except OSError as err:
        parser.error(f"--ca {args.ca}: {err.strerror}")
    try:
        asyncio.run(rounds(args))
    except Failure as err:
        print(f"{PROGRAM}: {err}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError) as err:
        print(f"{PROGRAM}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
