//! UDP traffic through a topology: clients that send numbered QUIC packets from their own
//! source ports, and backends that record which packets they received.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::{addresses::QUIC_PORT, netns};

/// A packet as sent: which flow, which sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag {
    pub flow: u32,
    pub seq: u32,
}

fn tagged(packet: &[u8], tag: Tag) -> Vec<u8> {
    let mut packet = packet.to_vec();
    packet.extend_from_slice(&tag.flow.to_be_bytes());
    packet.extend_from_slice(&tag.seq.to_be_bytes());
    packet
}

fn tag_of(datagram: &[u8]) -> Option<Tag> {
    let tail = datagram.get(datagram.len().checked_sub(8)?..)?;
    Some(Tag {
        flow: u32::from_be_bytes(tail[..4].try_into().ok()?),
        seq: u32::from_be_bytes(tail[4..].try_into().ok()?),
    })
}

/// Records the tags of the datagrams a backend namespace receives on the VIP's QUIC port.
pub struct Receiver {
    stop: Arc<AtomicBool>,
    tags: Arc<Mutex<Vec<Tag>>>,
    handle: JoinHandle<()>,
}

impl Receiver {
    pub fn start(netns: &str, vip: IpAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, is_ready) = std::sync::mpsc::channel();
        let netns = netns.to_owned();
        let tags = Arc::new(Mutex::new(Vec::new()));
        let handle = {
            let (stop, tags) = (stop.clone(), tags.clone());
            thread::spawn(move || {
                let _inside = netns::enter(&netns);
                let socket = UdpSocket::bind((vip, QUIC_PORT)).expect("bind the VIP");
                socket
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .unwrap();
                ready.send(()).unwrap();
                let mut buf = [0u8; 2048];
                loop {
                    match socket.recv(&mut buf) {
                        Ok(len) => tags.lock().unwrap().extend(tag_of(&buf[..len])),
                        Err(_) if stop.load(Ordering::Relaxed) => break,
                        Err(_) => {}
                    }
                }
            })
        };
        is_ready
            .recv_timeout(Duration::from_secs(5))
            .expect("receiver ready");
        Self { stop, tags, handle }
    }

    /// Stops (once its socket has nothing more) and returns the tags received.
    pub fn finish(self) -> Vec<Tag> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("receiver thread");
        std::mem::take(&mut *self.tags.lock().unwrap())
    }
}

/// Which receivers (by position) got each tag: waits until every tag of `sent` has arrived at
/// one of them, or for `deadline` (then what was lost shows as missing), and stops them.
pub fn deliveries(
    receivers: Vec<Receiver>,
    sent: &[Tag],
    deadline: Duration,
) -> BTreeMap<Tag, Vec<usize>> {
    let until = Instant::now() + deadline;
    loop {
        let arrived: BTreeSet<Tag> = receivers
            .iter()
            .flat_map(|receiver| receiver.tags.lock().unwrap().clone())
            .collect();
        if sent.iter().all(|tag| arrived.contains(tag)) || Instant::now() >= until {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let mut got: BTreeMap<Tag, Vec<usize>> = BTreeMap::new();
    for (position, receiver) in receivers.into_iter().enumerate() {
        for tag in receiver.finish() {
            got.entry(tag).or_default().push(position);
        }
    }
    got
}

/// Sends, from a client namespace, round after round of one packet per flow until stopped;
/// each flow has its own socket (source port), and every packet carries its tag.
pub struct Sender {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Tag>>>,
    /// Rounds whose every packet has been sent: rounds `0..rounds` are complete.
    rounds: Arc<AtomicU32>,
    handle: JoinHandle<()>,
}

/// How long a sender may take for the rounds a test waits for, however loaded the machine.
const ROUNDS_DEADLINE: Duration = Duration::from_secs(60);

impl Sender {
    /// `flows[i]` is flow `i`'s packet (the tag is appended). `gap` is the pause per round.
    pub fn start(netns: &str, vip: IpAddr, flows: Vec<Vec<u8>>, gap: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let rounds = Arc::new(AtomicU32::new(0));
        let netns = netns.to_owned();
        let handle = {
            let (stop, sent, rounds) = (stop.clone(), sent.clone(), rounds.clone());
            thread::spawn(move || {
                let _inside = netns::enter(&netns);
                let unspecified = if vip.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
                let sockets: Vec<UdpSocket> = flows
                    .iter()
                    .map(|_| UdpSocket::bind(unspecified).expect("client socket"))
                    .collect();
                let mut seq = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    for (flow, (packet, socket)) in flows.iter().zip(&sockets).enumerate() {
                        let tag = Tag {
                            flow: flow as u32,
                            seq,
                        };
                        if socket
                            .send_to(&tagged(packet, tag), (vip, QUIC_PORT))
                            .is_ok()
                        {
                            sent.lock().unwrap().push(tag);
                        }
                    }
                    seq += 1;
                    rounds.store(seq, Ordering::Release);
                    thread::sleep(gap);
                }
            })
        };
        Self {
            stop,
            sent,
            rounds,
            handle,
        }
    }

    /// How many rounds are complete: every packet of a round numbered below it has been sent,
    /// and a round numbered above it starts only after this call.
    pub fn rounds(&self) -> u32 {
        self.rounds.load(Ordering::Acquire)
    }

    /// Waits until `more` rounds beyond those complete now are complete too; their number.
    pub fn wait_for_rounds(&self, more: u32) -> u32 {
        let target = self.rounds() + more;
        let deadline = Instant::now() + ROUNDS_DEADLINE;
        loop {
            let rounds = self.rounds();
            if rounds >= target {
                return rounds;
            }
            assert!(
                Instant::now() < deadline,
                "the sender completed {rounds} of {target} rounds in {ROUNDS_DEADLINE:?}"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops and returns every tag sent.
    pub fn finish(self) -> Vec<Tag> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("sender thread");
        self.sent.lock().unwrap().clone()
    }
}
