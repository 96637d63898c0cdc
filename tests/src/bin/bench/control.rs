//! Control plane: how long the controller's steps take with many server IDs. Installing
//! N server IDs (build the tables, write the inactive generation, flip, wait for readers),
//! computing the Maglev fallback table, and reloading a config file that drains one backend
//! (read and validate, build, apply the difference): the path `quic-router run` takes on
//! SIGHUP. The program is loaded (not attached) in an isolated namespace.

use std::{path::Path, time::Instant};

use integration_tests::{
    ConfigFile, TestRouter,
    addresses::{QUIC_PORT, VIP4},
    config_text::{BackendText, ConfigText},
    fixtures::INTERFACES,
    write_key,
};
use router_common::maps::FALLBACK_TABLE_SIZE;
use router_user::{
    config::{self, RouterConfig},
    fallback::{Member, maglev_table},
};

pub struct Settings {
    /// Server ID counts to install.
    pub server_ids: Vec<usize>,
    /// Repetitions per figure; the median is reported.
    pub runs: usize,
}

/// Backends the server IDs are spread over.
const BACKENDS: usize = 100;

/// One figure, in milliseconds.
pub struct Figure {
    pub id: String,
    pub what: String,
    pub ms: f64,
}

/// A config with `BACKENDS` backends and `server_ids` server IDs (3 octets, four-pass,
/// codepoint 2) spread over them; backend 0 drained if `drain_first`.
fn config_text(key_file: &Path, server_ids: usize, drain_first: bool) -> String {
    let per_backend = server_ids.div_ceil(BACKENDS).max(1);
    (0..BACKENDS)
        .fold(
            ConfigText::new()
                .listener(VIP4, QUIC_PORT, None)
                .quic_lb(2, 3, 4, 0, Some(key_file)),
            |text, backend| {
                let ids = (backend * per_backend..(backend + 1) * per_backend)
                    .filter(|&id| id < server_ids.max(BACKENDS));
                let host = BackendText::host(
                    &format!("server{backend}"),
                    INTERFACES[backend % 2].name,
                    &format!("02:00:00:00:{:02x}:01", backend % 256),
                );
                let host = ids.fold(host, |host, id| {
                    host.server_id(2, &format!("{:06x}", id + 1))
                });
                text.backend(&host.state(if drain_first && backend == 0 {
                    "draining"
                } else {
                    "active"
                }))
            },
        )
        .build()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

pub fn run(settings: &Settings) -> Vec<Figure> {
    // The standard config only brings up the namespace's interfaces and loads the program.
    let mut router = TestRouter::new(&ConfigFile::standard().load());
    let dir = tempfile::tempdir().expect("temporary directory");
    let key_file = write_key(dir.path(), "cr2.key", "fdf726a9893ec05c0632d3956680baf0");
    let write_config = |name: &str, server_ids, drain_first| {
        let path = dir.path().join(name);
        std::fs::write(&path, config_text(&key_file, server_ids, drain_first))
            .expect("write config");
        path
    };
    let base =
        config::load(&write_config("base.toml", 0, false)).unwrap_or_else(|err| panic!("{err}"));
    // Both generations hold `config`.
    let settle = |router: &mut TestRouter, config: &RouterConfig| {
        router.install(config);
        router.install(config);
    };

    let mut figures = Vec::new();
    for &count in &settings.server_ids {
        let path = write_config(&format!("{count}.toml"), count, false);
        let drained_path = write_config(&format!("{count}-drained.toml"), count, true);
        let (mut parse, mut installs, mut reloads) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..settings.runs {
            settle(&mut router, &base);
            let start = Instant::now();
            let config = config::load(&path).unwrap_or_else(|err| panic!("{err}"));
            parse.push(ms_since(start));
            let start = Instant::now();
            router.install(&config);
            installs.push(ms_since(start));

            router.install(&config);
            let start = Instant::now();
            let drained = config::load(&drained_path).unwrap_or_else(|err| panic!("{err}"));
            router.install(&drained);
            reloads.push(ms_since(start));
        }
        figures.push(Figure {
            id: format!("parse_{count}"),
            what: format!("read and validate a config with {count} server IDs"),
            ms: median(parse),
        });
        figures.push(Figure {
            id: format!("install_{count}"),
            what: format!("install {count} server IDs (build tables, write, flip, wait)"),
            ms: median(installs),
        });
        figures.push(Figure {
            id: format!("reload_{count}"),
            what: format!("reload: drain 1 of {BACKENDS} backends, {count} server IDs installed"),
            ms: median(reloads),
        });
    }

    for backends in [BACKENDS, 1000] {
        let names: Vec<String> = (0..backends).map(|i| format!("server{i}")).collect();
        let members: Vec<Member<'_>> = names
            .iter()
            .enumerate()
            .map(|(index, name)| Member {
                name,
                index: index as u32,
                weight: 1,
            })
            .collect();
        let samples = (0..settings.runs)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(maglev_table(&members, FALLBACK_TABLE_SIZE));
                ms_since(start)
            })
            .collect();
        figures.push(Figure {
            id: format!("fallback_{backends}"),
            what: format!(
                "compute the fallback table ({FALLBACK_TABLE_SIZE} slots, {backends} backends)"
            ),
            ms: median(samples),
        });
    }
    figures
}
