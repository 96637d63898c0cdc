//! The rate limit of the router's ICMP answers: a burst, then one answer per cost's worth of
//! time, never more than the burst banked.

use router_common::maps::IcmpBudget;

const COST: u64 = IcmpBudget::COST_NS;

#[test]
fn a_fresh_budget_answers_a_burst_then_refuses() {
    let mut budget = IcmpBudget::default();
    let now = 5_000_000_000;
    let answered = (0..IcmpBudget::BURST + 10)
        .filter(|_| budget.take(now))
        .count() as u64;
    assert_eq!(answered, IcmpBudget::BURST);
}

#[test]
fn time_earns_one_answer_per_cost() {
    let mut budget = IcmpBudget::default();
    let mut now = 5_000_000_000;
    while budget.take(now) {}
    assert!(!budget.take(now + COST - 1), "not before a cost's worth");
    assert!(budget.take(now + COST), "one after it");
    now += COST;
    assert!(!budget.take(now));
    // Ten costs' worth: ten answers.
    now += 10 * COST;
    assert_eq!((0..20).filter(|_| budget.take(now)).count(), 10);
}

#[test]
fn idle_time_banks_no_more_than_a_burst() {
    let mut budget = IcmpBudget::default();
    let mut now = 5_000_000_000;
    while budget.take(now) {}
    now += 3600 * 1_000_000_000;
    let answered = (0..1000).filter(|_| budget.take(now)).count() as u64;
    assert_eq!(answered, IcmpBudget::BURST);
}
