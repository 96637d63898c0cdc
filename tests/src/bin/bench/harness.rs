//! What the forwarding benchmarks share: the traffic generator, frames, CPU placement,
//! batched UDP sockets and the kernel's UDP counters.

use std::{
    io,
    mem::MaybeUninit,
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4},
    os::fd::RawFd,
    thread,
    time::{Duration, Instant},
};

use aya::{
    maps::DevMap,
    programs::{ProgramInfo, TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use bench_ebpf::{BENCH_MARKER_OFFSET, map_names, program_names};
use integration_tests::{
    addresses::{CLIENT4, QUIC_PORT, VIP4},
    fixtures::mint,
    load_bench_programs, netns,
    packet::{Datagram, short_header},
    take_map,
    topology::Topology,
    xdp_program,
};
use router_user::{config::parse_mac, netif};
use socket2::{Domain, Socket, Type};

/// The QUIC port of the listener.
/// UDP payload octets per packet: a short header, its CID, then padding, with the index of
/// the server the CID names at `BENCH_MARKER_OFFSET`.
pub const PAYLOAD_LEN: usize = 128;
/// Datagrams per recvmmsg / sendmmsg.
pub const BATCH: usize = 32;

/// The payloads of `flows` flows over `servers` (server IDs per codepoint 0..=3): flow `j`
/// carries a CID of server `j % servers.len()` under codepoint `(j / servers.len()) % 4`.
/// Each with the index of its server.
pub fn flow_payloads(servers: &[[&str; 4]], flows: usize) -> Vec<(usize, Vec<u8>)> {
    (0..flows)
        .map(|j| {
            let server = j % servers.len();
            let codepoint = (j / servers.len()) % 4;
            let cid = mint(codepoint as u8, servers[server][codepoint], j as u64 + 1);
            let mut payload = short_header(&cid);
            payload.resize(PAYLOAD_LEN, 0);
            payload[BENCH_MARKER_OFFSET] = server as u8;
            (server, payload)
        })
        .collect()
}

/// Fills in an IPv4 header's checksum (the stack checks it on the user-space router's path;
/// the UDP checksum may stay zero).
pub fn set_ipv4_checksum(header: &mut [u8]) {
    header[10..12].fill(0);
    let sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    header[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
}

/// (busy, total) jiffies of each CPU, from /proc/stat.
pub fn cpu_times() -> Vec<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    stat.lines()
        .filter(|line| line.starts_with("cpu") && !line.starts_with("cpu "))
        .map(|line| {
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|field| field.parse().ok())
                .collect();
            let field = |i: usize| fields.get(i).copied().unwrap_or(0);
            // user, nice, system, irq, softirq; not idle, iowait, or steal (time the
            // hypervisor gave to others).
            let busy = field(0) + field(1) + field(2) + field(5) + field(6);
            (busy, busy + field(3) + field(4) + field(7))
        })
        .collect()
}

pub fn busy(before: &[(u64, u64)], after: &[(u64, u64)], cpu: usize) -> f64 {
    let (busy, total) = (
        after[cpu].0 - before[cpu].0,
        (after[cpu].1 - before[cpu].1).max(1),
    );
    busy as f64 / total as f64
}

/// The generator: the bench's `bench_generate` program run by BPF_PROG_TEST_RUN in
/// live-frames mode in the client namespace, so that frames leave `c0` as from a NIC, without
/// a socket or an skb on the way out: cheap enough that the forwarder, not the generator,
/// bounds the rate.
pub struct Generator {
    netns: String,
    client_mac: [u8; 6],
    router_mac: [u8; 6],
    ebpf: aya::Ebpf,
}

/// Frames per BPF_PROG_TEST_RUN call (one flow's; the kernel sends them in batches of 64).
/// Each call also sets up and tears down a page pool, which sleeps for a few tens of
/// milliseconds: calls of some tens of milliseconds' work from two threads per CPU, so that
/// one sends while the other sleeps. Flows go in bursts of a call each, two at a time (smaller calls
/// from more threads starve the receive paths that share the generator's CPU).
const FRAMES_PER_CALL: u32 = 1 << 18;
const GENERATOR_THREADS: usize = 2;

impl Generator {
    pub fn new(topology: &Topology) -> Self {
        let _inside = topology.client.enter();
        let mut ebpf = load_bench_programs();
        let mut port: DevMap<_> = take_map(&mut ebpf, map_names::GENERATOR_PORT);
        let c0 = netif::lookup("c0").unwrap_or_else(|err| panic!("{err}"));
        port.set(0, c0.ifindex, None, 0).expect("GENERATOR_PORT");
        xdp_program(&mut ebpf, program_names::GENERATE)
            .load()
            .unwrap_or_else(|err| panic!("bench_generate: {err}"));
        Self {
            netns: topology.client.name.clone(),
            client_mac: c0.mac,
            router_mac: parse_mac(&topology.router.mac("r0")).expect("r0's MAC"),
            ebpf,
        }
    }

    /// A frame from the client, UDP port `src_port`, to the VIP's QUIC port.
    pub fn frame(&self, src_port: u16, payload: Vec<u8>) -> Vec<u8> {
        let mut frame = Datagram::new(
            IpAddr::V4(CLIENT4.parse().expect("client address")),
            IpAddr::V4(VIP4.parse().expect("VIP")),
            src_port,
            QUIC_PORT,
            payload,
        )
        .frame();
        frame[..6].copy_from_slice(&self.router_mac);
        frame[6..12].copy_from_slice(&self.client_mac);
        set_ipv4_checksum(&mut frame[14..34]);
        frame
    }

    /// Sends a call's worth of each of `frames` in turn for `seconds` or up to `max_packets`,
    /// from the generator's threads on each of `cpus`: (frames handed to the kernel, seconds).
    pub fn send(
        &mut self,
        frames: &[Vec<u8>],
        seconds: f64,
        max_packets: u64,
        cpus: &[usize],
    ) -> (u64, f64) {
        let program: &Xdp = xdp_program(&mut self.ebpf, program_names::GENERATE);
        let netns = &self.netns;
        let deadline = Duration::from_secs_f64(seconds);
        let threads = GENERATOR_THREADS * cpus.len();
        let per_thread = max_packets / threads as u64;
        let started = Instant::now();
        let sent: u64 = thread::scope(|scope| {
            let threads: Vec<_> = (0..threads)
                .map(|first| {
                    let cpu = cpus[first % cpus.len()];
                    scope.spawn(move || {
                        pin_to_cpu(0, cpu);
                        let _inside = netns::enter(netns);
                        let mut sent = 0u64;
                        for frame in frames.iter().cycle().skip(first) {
                            if started.elapsed() >= deadline || sent >= per_thread {
                                break;
                            }
                            program
                                .test_run(TestRunOptions {
                                    data_in: Some(frame),
                                    repeat: FRAMES_PER_CALL,
                                    attrs: TestRunAttrs::new().xdp_live_frames(0),
                                    ..TestRunOptions::default()
                                })
                                .unwrap_or_else(|err| {
                                    panic!("BPF_PROG_TEST_RUN (live frames): {err}")
                                });
                            sent += u64::from(FRAMES_PER_CALL);
                        }
                        sent
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().expect("generator thread"))
                .sum()
        });
        (sent, started.elapsed().as_secs_f64())
    }
}

/// (total run time in ns, runs) of a loaded program, from the kernel's BPF statistics
/// (counted while `BPF_ENABLE_STATS` is on).
pub fn run_stats(info: &ProgramInfo) -> (u64, u64) {
    (info.run_time().as_nanos() as u64, info.run_count())
}

/// [`run_stats`] of a loaded XDP program.
pub fn xdp_run_stats(program: &Xdp) -> (u64, u64) {
    let info = program
        .info()
        .unwrap_or_else(|err| panic!("program information: {err}"));
    run_stats(&info)
}

/// Nanoseconds per run between two readings of run statistics, if it ran.
pub fn ns_per_run(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let runs = after.1 - before.1;
    (runs > 0).then(|| (after.0 - before.0) as f64 / runs as f64)
}

/// Loads the bench program `name` and attaches it to `interface` in native mode.
pub fn load_and_attach(ebpf: &mut aya::Ebpf, name: &str, interface: &str) {
    let program = xdp_program(ebpf, name);
    program.load().unwrap_or_else(|err| panic!("{name}: {err}"));
    program
        .attach(interface, XdpMode::Driver)
        .unwrap_or_else(|err| panic!("attach {name} to {interface}: {err}"));
}

pub use integration_tests::pin_to_cpu;

pub const GENERATOR_CPU: usize = 0;

/// The CPU the forwarder runs on: the last one.
pub fn forwarding_cpu() -> usize {
    thread::available_parallelism().map_or(1, usize::from) - 1
}

/// Pins the threaded NAPI kthreads of interfaces named `interface` to `cpu`. Kernel threads
/// are not in any namespace: this takes every `napi/<interface>-*` (the bench runs alone).
pub fn pin_napi_threads(interface: &str, cpu: usize) {
    let prefix = format!("napi/{interface}-");
    let mut pinned = 0;
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(&prefix) {
            pin_to_cpu(pid, cpu);
            pinned += 1;
        }
    }
    assert!(pinned > 0, "no threaded NAPI for {interface}");
}

/// A UDP socket bound to `addr` with a 50 ms receive timeout, in an SO_REUSEPORT group if
/// `reuse_port`. Its receive buffer is as large as `net.core.rmem_max` lets an application
/// make it (SO_RCVBUF): forced larger (4 MiB), it holds more datagrams under overload, which
/// costs the receiver cache misses and lowered the delivered rate by a third here.
pub fn receiving_socket(addr: SocketAddr, reuse_port: bool) -> Socket {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None).expect("UDP socket");
    if reuse_port {
        socket.set_reuse_port(true).expect("SO_REUSEPORT");
    }
    socket.set_recv_buffer_size(16 << 20).expect("SO_RCVBUF");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("SO_RCVTIMEO");
    socket
        .bind(&addr.into())
        .unwrap_or_else(|err| panic!("bind {addr}: {err}"));
    socket
}

pub fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A batch of datagrams for sendmmsg / recvmmsg, with the buffers and IPv4 addresses they
/// use (the bench's traffic is IPv4).
pub struct MessageBatch {
    buffers: Vec<[u8; 2048]>,
    lens: Vec<usize>,
    addresses: Vec<libc::sockaddr_in>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl MessageBatch {
    pub fn new() -> Self {
        Self {
            buffers: vec![[0u8; 2048]; BATCH],
            lens: vec![0; BATCH],
            addresses: vec![sockaddr_in(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)); BATCH],
            iovecs: Vec::with_capacity(BATCH),
            headers: Vec::with_capacity(BATCH),
        }
    }

    /// Points the headers at the buffers and the addresses.
    fn prepare(&mut self, count: usize) {
        self.iovecs.clear();
        self.headers.clear();
        for i in 0..count {
            self.iovecs.push(libc::iovec {
                iov_base: self.buffers[i].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            });
        }
        for i in 0..count {
            // SAFETY: msghdr is plain data; all zeros is a valid value.
            let mut header: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            header.msg_iov = &mut self.iovecs[i];
            header.msg_iovlen = 1;
            header.msg_name = (&mut self.addresses[i] as *mut libc::sockaddr_in).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            self.headers.push(libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            });
        }
    }

    /// Sends the first `count` datagrams to their addresses: how many the kernel took.
    pub fn send(&mut self, fd: RawFd, count: usize) -> io::Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        self.prepare(count);
        // SAFETY: the headers point into buffers this batch owns, alive for the call.
        let sent = unsafe { libc::sendmmsg(fd, self.headers.as_mut_ptr(), count as u32, 0) };
        usize::try_from(sent).map_err(|_| io::Error::last_os_error())
    }

    /// Receives up to a batch (waits for the first, up to the socket's timeout).
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        self.lens.fill(2048);
        self.prepare(BATCH);
        // SAFETY: as in `send`; the kernel writes at most the lengths given.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        let received = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
        for i in 0..received {
            self.lens[i] = self.headers[i].msg_len as usize;
        }
        Ok(received)
    }

    pub fn datagram(&self, i: usize) -> &[u8] {
        &self.buffers[i][..self.lens[i]]
    }

    pub fn source(&self, i: usize) -> SocketAddr {
        let addr = &self.addresses[i];
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
            u16::from_be(addr.sin_port),
        ))
    }

    /// Places `datagram` for `destination` at position `i` of an outgoing batch.
    pub fn load(&mut self, i: usize, datagram: &[u8], destination: &libc::sockaddr_in) {
        self.buffers[i][..datagram.len()].copy_from_slice(datagram);
        self.lens[i] = datagram.len();
        self.addresses[i] = *destination;
    }
}

/// UdpRcvbufErrors of the calling thread's network namespace.
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").expect("/proc/net/snmp");
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (names, values) = (udp.next().expect("Udp header"), udp.next().expect("Udp"));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
        .expect("RcvbufErrors")
}

pub fn udp_rcvbuf_errors_in(netns: &str) -> u64 {
    let netns = netns.to_owned();
    thread::spawn(move || {
        let _inside = netns::enter(&netns);
        udp_rcvbuf_errors()
    })
    .join()
    .expect("snmp thread")
}
