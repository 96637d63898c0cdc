//! CID cache entries and sets: an entry is found by its whole CID, length and epoch; a new
//! entry goes first and the older moves second; a CID's set comes from its encrypted octets.

use router_common::maps::{CidCacheSet, CidCacheWay};

const CID: [u8; 8] = [0x5d, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77];

#[test]
fn an_entry_is_found_by_its_cid_under_its_epoch() {
    let mut set = CidCacheSet::default();
    set.insert(&CidCacheWay::new(&CID, 7, 3));
    assert_eq!(set.find(&CidCacheWay::new(&CID, 7, 0)), Some(3));
}

#[test]
fn another_epoch_finds_nothing() {
    let mut set = CidCacheSet::default();
    set.insert(&CidCacheWay::new(&CID, 7, 3));
    assert_eq!(set.find(&CidCacheWay::new(&CID, 8, 0)), None);
}

#[test]
fn a_cid_that_differs_in_any_octet_or_in_length_finds_nothing() {
    let mut set = CidCacheSet::default();
    set.insert(&CidCacheWay::new(&CID, 7, 3));
    for i in 0..CID.len() {
        let mut other = CID;
        other[i] ^= 0x80;
        assert_eq!(set.find(&CidCacheWay::new(&other, 7, 0)), None, "octet {i}");
    }
    // The same octets, one shorter, or one longer with a zero: another CID.
    assert_eq!(set.find(&CidCacheWay::new(&CID[..7], 7, 0)), None);
    let longer = [&CID[..], &[0]].concat();
    assert_eq!(set.find(&CidCacheWay::new(&longer, 7, 0)), None);
}

#[test]
fn a_zeroed_set_finds_no_cid_under_the_first_epoch() {
    // A new map is zeroed: its entries hold an empty CID (which the program never probes:
    // it has no codepoint) under epoch 0, and answer for no real CID.
    let set = CidCacheSet::default();
    assert_eq!(set.find(&CidCacheWay::new(&CID, 0, 0)), None);
}

#[test]
fn a_new_entry_goes_first_and_the_second_makes_way() {
    let cids: Vec<[u8; 8]> = (0..3u8)
        .map(|i| {
            let mut cid = CID;
            cid[7] = i;
            cid
        })
        .collect();
    let mut set = CidCacheSet::default();
    for (backend, cid) in cids.iter().enumerate() {
        set.insert(&CidCacheWay::new(cid, 1, backend as u32));
    }
    assert_eq!(set.find(&CidCacheWay::new(&cids[0], 1, 0)), None);
    assert_eq!(set.find(&CidCacheWay::new(&cids[1], 1, 0)), Some(1));
    assert_eq!(set.find(&CidCacheWay::new(&cids[2], 1, 0)), Some(2));
    assert_eq!(set.ways[0].backend, 2, "the newest is first");
}

#[test]
fn the_set_comes_from_the_second_to_fifth_octets() {
    let way = CidCacheWay::new(&CID, 1, 0);
    assert_eq!(way.set(1 << 20), 0x0033_2211 & ((1 << 20) - 1));
    assert_eq!(way.set(1024), 0x2211 & 1023);
    // The first octet (the codepoint's) and the octets after the fifth do not count.
    let mut other = CID;
    other[0] ^= 0xff;
    other[5] ^= 0xff;
    assert_eq!(
        CidCacheWay::new(&other, 1, 0).set(1 << 20),
        way.set(1 << 20)
    );
}
