//! The documentation's counter tables list exactly the outcomes the code defines, in order,
//! with the meanings the code gives them (`router_common::counters`, `router_common::decap`):
//! the one list that the kernel's counters, `stats`, the metrics and `explain` follow too.

use router_common::{
    counters::{LocalOutcome, Outcome},
    decap::DecapOutcome,
};

const DATA_PATH: &str = include_str!("../../docs/data-path.md");
const LOCAL_WORKERS: &str = include_str!("../../docs/local-workers.md");
const DECAP: &str = include_str!("../../docs/decap.md");

/// (counter, meaning) of each row of the table whose header is `header`: the first cell
/// (without its backticks) and the last.
fn rows<'a>(page: &'a str, header: &str) -> Vec<(&'a str, &'a str)> {
    let mut lines = page.lines().skip_while(|line| *line != header);
    assert!(lines.next().is_some(), "no table {header:?}");
    lines
        .skip(1) // |---|...
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].trim_matches('`'), *cells.last().expect("a cell"))
        })
        .collect()
}

#[test]
fn the_data_path_table_lists_exactly_the_outcomes() {
    let expected: Vec<(&str, &str)> = Outcome::ALL
        .iter()
        .map(|o| (o.name(), o.meaning()))
        .collect();
    assert_eq!(rows(DATA_PATH, "| counter | action | meaning |"), expected);
}

#[test]
fn the_local_workers_table_lists_exactly_the_socket_selection_outcomes() {
    let expected: Vec<(&str, &str)> = LocalOutcome::ALL
        .iter()
        .map(|o| (o.name(), o.meaning()))
        .collect();
    assert_eq!(rows(LOCAL_WORKERS, "| counter | meaning |"), expected);
}

#[test]
fn the_decapsulator_table_lists_exactly_its_outcomes_and_actions() {
    let expected: Vec<(&str, &str)> = DecapOutcome::ALL
        .iter()
        .map(|o| (o.name(), o.meaning()))
        .collect();
    assert_eq!(rows(DECAP, "| counter | action | meaning |"), expected);
    for line in DECAP.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let outcome = DecapOutcome::ALL
            .iter()
            .find(|o| o.name() == cells[0].trim_matches('`'))
            .unwrap();
        let action = if outcome.passes() { "pass" } else { "drop" };
        assert_eq!(cells[1], action, "{}", outcome.name());
    }
}
