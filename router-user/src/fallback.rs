//! The fallback table: Maglev consistent hashing (Eisenbud et al., NSDI 2016) with weights.
//!
//! Each backend walks its own permutation of the slots, derived from its name, and claims
//! the next free slot on its turn; a backend of weight `w` gets `w` turns a round. Adding or
//! removing a backend moves few slots, and the same backends always give the same table,
//! across controller restarts too (SipHash with fixed keys, not a per-process seed).

use std::hash::Hasher as _;

use router_common::maps::NO_BACKEND;
use siphasher::sip::SipHasher13;

/// A backend that takes fallback traffic.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub name: &'a str,
    /// The backend index that the table's slots hold.
    pub index: u32,
    pub weight: u32,
}

fn hash(name: &str, key: u64) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(key, 0x7175_6963_2d72_6f75);
    hasher.write(name.as_bytes());
    hasher.finish()
}

/// A table of `size` slots (a prime) with each member's index, in proportion to the weights.
/// Without members every slot is [`NO_BACKEND`].
pub fn maglev_table(members: &[Member<'_>], size: u32) -> Vec<u32> {
    let size_u64 = u64::from(size);
    let mut table = vec![NO_BACKEND; size as usize];
    if members.is_empty() {
        return table;
    }
    // (offset, skip, position in the permutation) of each member.
    let mut walks: Vec<(u64, u64, u64)> = members
        .iter()
        .map(|m| {
            (
                hash(m.name, 1) % size_u64,
                hash(m.name, 2) % (size_u64 - 1) + 1,
                0,
            )
        })
        .collect();
    let mut filled = 0;
    loop {
        for (member, walk) in members.iter().zip(&mut walks) {
            for _ in 0..member.weight {
                let slot = loop {
                    let (offset, skip, next) = *walk;
                    walk.2 += 1;
                    let slot = ((offset + next * skip) % size_u64) as usize;
                    if table[slot] == NO_BACKEND {
                        break slot;
                    }
                };
                table[slot] = member.index;
                filled += 1;
                if filled == table.len() {
                    return table;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u32 = 65_537;

    /// Members of weight 1 named `names`, indexed in order.
    fn members(names: &[String]) -> Vec<Member<'_>> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| Member {
                name,
                index: i as u32,
                weight: 1,
            })
            .collect()
    }

    fn shares(table: &[u32], members: &[Member<'_>]) -> Vec<f64> {
        members
            .iter()
            .map(|m| table.iter().filter(|&&i| i == m.index).count() as f64 / table.len() as f64)
            .collect()
    }

    #[test]
    fn empty_table_has_no_backend() {
        assert!(maglev_table(&[], SIZE).iter().all(|&i| i == NO_BACKEND));
    }

    #[test]
    fn equal_weights_share_evenly_and_weights_count() {
        let names: Vec<String> = (0..7).map(|i| format!("backend-{i}")).collect();
        let members = members(&names);
        let table = maglev_table(&members, SIZE);
        for share in shares(&table, &members) {
            assert!((share - 1.0 / 7.0).abs() < 0.002, "{share}");
        }

        let weighted = [
            Member {
                name: "a",
                index: 0,
                weight: 1,
            },
            Member {
                name: "b",
                index: 1,
                weight: 3,
            },
        ];
        let shares = shares(&maglev_table(&weighted, SIZE), &weighted);
        assert!(
            (shares[0] - 0.25).abs() < 0.002 && (shares[1] - 0.75).abs() < 0.002,
            "{shares:?}"
        );
    }

    #[test]
    fn removing_a_backend_moves_little_else() {
        let names: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
        let all = members(&names);
        let before = maglev_table(&all, SIZE);
        let after = maglev_table(&all[..9], SIZE);
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != 9 && b != a)
            .count();
        // Slots of the removed backend move; of the rest, only a small fraction.
        assert!((moved as f64) < 0.03 * SIZE as f64, "{moved} slots moved");
        assert_eq!(
            maglev_table(&all, SIZE),
            before,
            "the table is deterministic"
        );
    }
}
