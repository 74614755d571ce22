use super::*;

#[test]
fn create_and_query() {
    let g = Groups::new();
    assert_eq!(g.len(), 1);
    let a = g.create(GroupId::ROOT).unwrap();
    let b = g.create(a).unwrap();
    assert_eq!(g.parent(b).unwrap(), Some(a));
    assert_eq!(g.parent(GroupId::ROOT).unwrap(), None);
    assert_eq!(
        g.ancestors(b).unwrap().collect::<Vec<_>>(),
        vec![b, a, GroupId::ROOT]
    );
    assert_eq!(
        g.create(GroupId::from_raw(99)),
        Err(Error::UnknownGroup(GroupId::from_raw(99)))
    );
    assert_eq!(
        g.state(GroupId::from_raw(3)),
        Err(Error::UnknownGroup(GroupId::from_raw(3)))
    );
}

#[test]
fn offline_rules() {
    let g = Groups::new();
    let a = g.create(GroupId::ROOT).unwrap();
    let b = g.create(a).unwrap();
    assert_eq!(g.offline(GroupId::ROOT), Err(Error::RootGroup));
    assert_eq!(g.offline(a), Err(Error::HasOnlineChildren(a)));
    // A charged page keeps b's record after its offline.
    g.charge(b, 10, false, None).unwrap();
    g.offline(b).unwrap();
    assert_eq!(g.state(b), Ok(GroupState::Offline));
    assert_eq!(g.offline(b), Err(Error::GroupOffline(b)));
    assert_eq!(g.create(b), Err(Error::GroupOffline(b)));
    assert_eq!(g.nearest_online(b).unwrap(), a);
    // b holds a reference on a: a goes offline but stays.
    g.offline(a).unwrap();
    assert_eq!(g.nearest_online(b).unwrap(), GroupId::ROOT);
    assert_eq!(g.live(), 3);
    // The last reference goes: b is freed, then a.
    g.uncharge(b, 10, false, None).unwrap();
    assert_eq!(g.live(), 1);
    assert_eq!(g.state(b), Err(Error::UnknownGroup(b)));
    assert_eq!(g.state(a), Err(Error::UnknownGroup(a)));
    assert_eq!(g.stats(GroupId::ROOT).unwrap().zswap, 0);
    // Indexes come back oldest freed first, under their next generation.
    let c = g.create(GroupId::ROOT).unwrap();
    let d = g.create(GroupId::ROOT).unwrap();
    assert_eq!((c.index(), c.generation()), (b.index(), 1));
    assert_eq!((d.index(), d.generation()), (a.index(), 1));
    assert_eq!(g.len(), 3, "no new index");
    assert_eq!(g.create(b), Err(Error::UnknownGroup(b)), "a stale parent");
    assert_eq!(g.set_zswap_max(a, Some(1)), Err(Error::UnknownGroup(a)));
    assert_eq!(
        g.zswap_max(c).unwrap(),
        None,
        "a reused record starts fresh"
    );
    assert_eq!(g.children(GroupId::ROOT).collect::<Vec<_>>(), vec![c, d]);
}

#[test]
fn many_groups_come_and_go_in_a_bounded_table() {
    let g = Groups::new();
    let mut last = GroupId::ROOT;
    for _ in 0..10_000 {
        let a = g.create(GroupId::ROOT).unwrap();
        let b = g.create(a).unwrap();
        g.offline(b).unwrap();
        g.offline(a).unwrap();
        assert_eq!(g.state(b), Err(Error::UnknownGroup(b)));
        last = b;
    }
    assert_eq!((g.len(), g.live()), (3, 1));
    assert_eq!(last.generation(), 9_999);
}

#[test]
fn hierarchical_settings() {
    let g = Groups::new();
    let a = g.create(GroupId::ROOT).unwrap();
    let b = g.create(a).unwrap();
    assert_eq!(
        g.set_zswap_max(GroupId::ROOT, Some(1)),
        Err(Error::RootGroup)
    );
    assert!(g.may_zswap(b).unwrap());
    g.set_zswap_max(a, Some(100)).unwrap();
    assert_eq!(g.zswap_max(a).unwrap(), Some(100));
    assert_eq!(g.zswap_max(b).unwrap(), None);
    g.charge(b, 60, false, None).unwrap();
    assert!(g.may_zswap(b).unwrap());
    assert_eq!(g.over_limit(b).unwrap(), None);
    g.charge(b, 40, true, None).unwrap();
    assert!(!g.may_zswap(b).unwrap(), "a's usage (100) reached its max");
    assert_eq!(g.over_limit(b).unwrap(), Some(a));
    g.uncharge(b, 40, true, None).unwrap();
    assert!(g.may_zswap(b).unwrap());
    g.set_zswap_max(b, Some(0)).unwrap();
    assert!(!g.may_zswap(b).unwrap(), "zswap.max 0 forbids any store");

    assert!(g.writeback_enabled(b).unwrap());
    g.set_zswap_writeback(a, false).unwrap();
    assert!(!g.writeback_enabled(b).unwrap());
    assert!(
        g.zswap_writeback(b).unwrap(),
        "b's own setting is untouched"
    );
    let c = g.create(a).unwrap();
    assert!(
        !g.zswap_writeback(c).unwrap(),
        "a new child inherits its parent's setting"
    );
}

#[test]
fn counters_are_hierarchical_and_follow_offline() {
    let g = Groups::new();
    let a = g.create(GroupId::ROOT).unwrap();
    let b = g.create(a).unwrap();
    assert_eq!(g.charge(b, 10, true, Some(GroupEvent::Zswpout)).unwrap(), b);
    g.count_event(a, GroupEvent::Zswpwb).unwrap();
    let sa = g.stats(a).unwrap();
    assert_eq!(
        (
            sa.zswap,
            sa.zswapped,
            sa.zswap_incomp,
            sa.zswpout,
            sa.zswpwb
        ),
        (10, 1, 1, 1, 1)
    );
    assert_eq!(g.stats(GroupId::ROOT).unwrap().zswap, 10);
    assert_eq!(g.stats(b).unwrap().zswpwb, 0);
    g.offline(b).unwrap();
    // A charge to an offline group lands on its nearest online ancestor.
    assert_eq!(g.charge(b, 5, false, None).unwrap(), a);
    assert_eq!(g.stats(a).unwrap().zswap, 15);
    // b's last charge goes with a load's event: counted on the way up,
    // before the reference that frees b.
    g.uncharge(b, 10, true, Some(GroupEvent::Zswpin)).unwrap();
    g.uncharge(a, 5, false, None).unwrap();
    assert_eq!(g.stats(a).unwrap().zswpin, 1);
    assert_eq!(
        g.stats(GroupId::ROOT).unwrap(),
        GroupStats {
            zswpin: 1,
            zswpout: 1,
            zswpwb: 1,
            zswpwb_foreign: 0,
            ..Default::default()
        }
    );
    // a is online: its own reference keeps it.
    assert_eq!(g.stats(a).unwrap().zswap, 0);
    assert_eq!(g.state(b), Err(Error::UnknownGroup(b)), "freed");
}

#[test]
fn pre_order_and_round_robin() {
    let g = Groups::new();
    let a = g.create(GroupId::ROOT).unwrap();
    let a1 = g.create(a).unwrap();
    let b = g.create(GroupId::ROOT).unwrap();
    let a2 = g.create(a).unwrap();
    let b1 = g.create(b).unwrap();
    let r = GroupId::ROOT;
    assert_eq!(g.iter().collect::<Vec<_>>(), vec![r, a, a1, a2, b, b1]);
    let rr = RoundRobin::new();
    assert_eq!(rr.next(&g), Some(r));
    assert_eq!(rr.next(&g), Some(a));
    assert_eq!(rr.next(&g), Some(a1));
    // The cursor points at a1; a1 goes offline (kept by a charge); the
    // cursor moves on.
    g.charge(a1, 1, false, None).unwrap();
    g.offline(a1).unwrap();
    assert_eq!(rr.position(), Some(a1));
    assert_eq!(rr.next(&g), Some(a2));
    // A whole subtree going offline under the cursor is skipped.
    g.offline(b1).unwrap();
    g.offline(b).unwrap();
    assert_eq!(rr.next(&g), None, "end of pass");
    assert_eq!(rr.next(&g), Some(r));
    assert_eq!(g.iter().collect::<Vec<_>>(), vec![r, a, a2]);
    // A cursor on a group freed since starts a new pass at the root.
    assert_eq!(rr.next(&g), Some(a));
    assert_eq!(rr.next(&g), Some(a2));
    g.offline(a2).unwrap();
    assert_eq!(rr.next(&g), Some(r), "a2 was freed: a new pass");
    g.uncharge(a1, 1, false, None).unwrap();
    assert_eq!(g.iter().collect::<Vec<_>>(), vec![r, a]);
}
