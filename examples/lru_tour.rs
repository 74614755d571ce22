//! A tour of the foundation layer: three tenants share a two-node
//! `ListLru`; reclaim for one tenant with second chance touches only that
//! tenant's lists; a tenant goes offline and its items move to its parent.
//!
//! Run: `cargo run --release --example lru_tour`

use std::sync::atomic::{AtomicBool, Ordering};

use zswap::{GroupId, Groups, Item, ListLru, LruStatus, NodeId, RoundRobin, Topology};

/// A cached page: its number and a referenced bit for second chance.
struct Page {
    no: u64,
    referenced: AtomicBool,
}

fn table(lru: &ListLru<Page>, groups: &Groups, title: &str) {
    println!("\n{title}");
    println!(
        "{:<8} {:>8} {:>8} {:>8}",
        "group", "node0", "node1", "state"
    );
    // The live groups: an offline one holds nothing (its items went to its
    // parent) and is freed.
    for g in groups.iter() {
        let c = |n| lru.count_one(NodeId(n), g).unwrap();
        println!(
            "{:<8} {:>8} {:>8} {:>8}",
            g.to_string(),
            c(0),
            c(1),
            format!("{:?}", groups.state(g).unwrap())
        );
    }
    println!(
        "{:<8} {:>8} {:>8}",
        "total",
        lru.count_node(NodeId(0)).unwrap(),
        lru.count_node(NodeId(1)).unwrap()
    );
}

fn main() {
    let groups = Groups::new();
    let db = groups.create(GroupId::ROOT).unwrap();
    let web = groups.create(GroupId::ROOT).unwrap();
    let batch = groups.create(web).unwrap();
    let topo = Topology::with_nodes(2);
    println!(
        "machine topology: {:?} (this tour uses 2 nodes)",
        Topology::detect().online()
    );
    let lru = ListLru::with_groups(&topo, &groups);

    let mut pages = Vec::new();
    for (g, n) in [(db, 3000u64), (web, 2000), (batch, 1000)] {
        for i in 0..n {
            let page = Item::new(Page {
                no: i,
                referenced: AtomicBool::new(true),
            });
            lru.add(&page, NodeId((i % 2) as u32), g).unwrap();
            pages.push(page);
        }
    }
    table(&lru, &groups, "after filling three tenants");

    // db is over its limit: reclaim 500 from db alone, second chance first.
    let mut budget = 2000;
    let mut reclaimed = Vec::new();
    let n = lru
        .walk_one(NodeId(0), db, &mut budget, |g| {
            if g.item().referenced.swap(false, Ordering::Relaxed) {
                return LruStatus::Rotate;
            }
            if reclaimed.len() == 500 {
                return LruStatus::Stop;
            }
            reclaimed.push(g.isolate().unwrap());
            LruStatus::Removed
        })
        .unwrap();
    println!(
        "\nreclaimed {n} pages from {db} on node0 (second chance rotated the first pass; coldest now page {})",
        reclaimed[0].no
    );
    table(&lru, &groups, "after reclaiming from db only");

    groups.offline(batch).unwrap();
    table(
        &lru,
        &groups,
        "after taking batch offline (its pages reparented to web)",
    );

    let rr = RoundRobin::new();
    let order: Vec<String> = std::iter::from_fn(|| rr.next(&groups))
        .map(|g| g.to_string())
        .collect();
    println!(
        "\nround-robin reclaim order (one pass): {}",
        order.join(" → ")
    );
}
