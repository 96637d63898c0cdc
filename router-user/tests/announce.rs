//! VIP announcement (`[announce]`): the controller keeps a route per VIP in the table the
//! config names, for the host's BGP daemon to announce; `withdraw` and `announce` drain and
//! restore it (`withdraw` without a controller too), a crashed controller leaves it, a
//! broken data path (its interface down) withdraws it until it works again, `detach`
//! removes it after the drain, and config edits follow the listeners. The BGP daemon itself
//! is in the fleet tests. Needs root.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use integration_tests::{
    addresses::{QUIC_PORT, VIP4, VIP6},
    config_text::ConfigText,
    deployment::Deployment,
};

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");
const TABLE: &str = "100";

fn config(deployment: &Deployment, vips: &[&str], announce: &str) -> String {
    let text = vips.iter().fold(ConfigText::new(), |text, vip| {
        text.listener(vip, QUIC_PORT, None)
    });
    let text = text
        .quic_lb(0, 2, 6, 0, None)
        .backend(&deployment.backend(0, "alpha").server_id(0, "0a01"))
        .build();
    format!("{text}\n[announce]\n{announce}\n")
}

/// The controller's routes in the table: `type destination` per route of its protocol.
fn routes(deployment: &Deployment) -> Vec<String> {
    let mut found = Vec::new();
    for family in ["-4", "-6"] {
        let output = Command::new("ip")
            .args([
                "-n",
                &deployment.topology.router.name,
                family,
                "route",
                "show",
            ])
            .args(["table", TABLE, "proto", "113"])
            .output()
            .expect("ip route");
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The kernel makes a table with its first route.
        if stderr.contains("table does not exist") {
            continue;
        }
        assert!(output.status.success(), "{output:?}");
        found.extend(
            String::from_utf8(output.stdout)
                .unwrap()
                .lines()
                .map(|line| {
                    line.split_whitespace()
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ")
                }),
        );
    }
    found
}

/// Waits until the table holds `expected` (the controller checks every second).
fn wait_for_routes(deployment: &Deployment, expected: &[&str]) {
    let start = Instant::now();
    loop {
        let now = routes(deployment);
        if now == expected {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "routes {now:?}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn both() -> [String; 2] {
    [format!("blackhole {VIP4}"), format!("blackhole {VIP6}")]
}

#[test]
fn the_controller_announces_each_vip_while_the_data_path_runs_and_withdraws_on_request() {
    let deployment = Deployment::new(Path::new(BINARY), 1);
    deployment.write_config(&config(
        &deployment,
        &[VIP4, VIP6],
        &format!("table = {TABLE}\ndrain_ms = 300"),
    ));
    let controller = deployment.start(&[]);
    let [v4, v6] = both();
    wait_for_routes(&deployment, &[&v4, &v6]);
    let status = deployment.cli_ok(&["status", "--iface", "r0"]);
    assert!(
        status.contains(&format!("bgp         table 100, announced: {VIP4}, {VIP6}")),
        "{status}"
    );

    // A drain for maintenance, kept by a controller that restarts.
    let said = deployment.cli_ok(&["withdraw", "--iface", "r0"]);
    assert!(said.contains("VIPs withdrawn from table 100"), "{said}");
    assert_eq!(routes(&deployment), Vec::<String>::new());
    controller.terminate();
    let controller = deployment.start(&[]);
    // A request served means its first look at the routes is done.
    deployment.cli_ok(&["reload", "--iface", "r0"]);
    let status = deployment.cli_ok(&["status", "--iface", "r0"]);
    assert!(status.contains("withdrawn by the operator"), "{status}");
    assert_eq!(routes(&deployment), Vec::<String>::new());
    let said = deployment.cli_ok(&["announce", "--iface", "r0"]);
    assert!(
        said.contains(&format!("announced in table 100: {VIP4}, {VIP6}")),
        "{said}"
    );
    assert_eq!(routes(&deployment), [v4.clone(), v6.clone()]);

    // A controller that stops, or crashes, leaves the announcement: the data path keeps
    // routing.
    controller.terminate();
    assert_eq!(routes(&deployment), [v4.clone(), v6.clone()]);
    deployment.start(&[]).kill();
    assert_eq!(routes(&deployment), [v4.clone(), v6.clone()]);
    let controller = deployment.start(&[]);

    // Without a controller, `withdraw` still drains, and the next controller keeps it so.
    controller.kill();
    let said = deployment.cli_ok(&["withdraw", "--iface", "r0"]);
    assert!(said.contains("no controller runs"), "{said}");
    assert_eq!(routes(&deployment), Vec::<String>::new());
    let controller = deployment.start(&[]);
    // A request served means its first look at the routes is done.
    deployment.cli_ok(&["reload", "--iface", "r0"]);
    let status = deployment.cli_ok(&["status", "--iface", "r0"]);
    assert!(status.contains("withdrawn by the operator"), "{status}");
    assert_eq!(routes(&deployment), Vec::<String>::new());
    deployment.cli_ok(&["announce", "--iface", "r0"]);
    assert_eq!(routes(&deployment), [v4.clone(), v6.clone()]);

    // A route something else removed comes back; a VIP the config no longer lists goes.
    Command::new("ip")
        .args(["-n", &deployment.topology.router.name, "route", "del"])
        .args([&format!("{VIP4}/32"), "table", TABLE, "proto", "113"])
        .status()
        .unwrap();
    wait_for_routes(&deployment, &[&v4, &v6]);
    deployment.write_config(&config(&deployment, &[VIP6], &format!("table = {TABLE}")));
    deployment.cli_ok(&["reload", "--iface", "r0"]);
    assert_eq!(routes(&deployment), [v6.as_str()]);
    deployment.write_config(&config(
        &deployment,
        &[VIP4, VIP6],
        &format!("table = {TABLE}\ndrain_ms = 300"),
    ));
    deployment.cli_ok(&["reload", "--iface", "r0"]);
    assert_eq!(routes(&deployment), [v4.clone(), v6.clone()]);

    // The data path's interface down: withdrawn until it is up again.
    deployment
        .topology
        .router
        .ip(&["link", "set", "r0", "down"]);
    wait_for_routes(&deployment, &[]);
    let status = deployment.cli_ok(&["status", "--iface", "r0"]);
    assert!(
        status.contains("withdrawn: interface r0 is down"),
        "{status}"
    );
    deployment.topology.router.ip(&["link", "set", "r0", "up"]);
    wait_for_routes(&deployment, &[&v4, &v6]);
    let log = controller.log_text();
    for said in [
        "VIP withdrawn",
        "the data path is broken",
        "the data path works again",
    ] {
        assert!(log.contains(said), "{said}: {log}");
    }

    // Detach withdraws first, then waits the drain before the data path goes.
    let start = Instant::now();
    let said = deployment.cli_ok(&["detach", "--iface", "r0"]);
    assert!(
        said.contains(&format!("withdrew {VIP4} (table 100)")),
        "{said}"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(routes(&deployment), Vec::<String>::new());
}

#[test]
fn announce_and_withdraw_need_an_announce_table() {
    let deployment = Deployment::new(Path::new(BINARY), 1);
    let text = config(&deployment, &[VIP4], "table = 100");
    let without = text.replace("\n[announce]\ntable = 100\n", "");
    deployment.write_config(&without);
    let _controller = deployment.start(&[]);
    let (status, _, stderr) = deployment.cli(&["withdraw", "--iface", "r0"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("the config has no [announce]"), "{stderr}");
    for (table, why) in [
        ("254", "not a table of the router's own"),
        ("0", "not a table of the router's own"),
        ("4294967296", "not a table of the router's own"),
    ] {
        deployment.write_config(&config(&deployment, &[VIP4], &format!("table = {table}")));
        let (status, _, stderr) = deployment.cli(&["reload", "--iface", "r0"]);
        assert_eq!(status, 2, "{stderr}");
        assert!(stderr.contains(why), "{table}: {stderr}");
    }
    assert_eq!(routes(&deployment), Vec::<String>::new());
}
