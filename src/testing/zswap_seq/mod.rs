//! The sequential model of the zswap facade that `zswap_model.rs` runs
//! beside the real one: what each operation returns, where each page is
//! (zswap or the device), and every counter, global and per group. It is
//! written from the semantics alone (`zswap_store`, `zswap_load`,
//! `shrink_memcg`, `shrink_worker`, the list_lru walk, cgroup v2's
//! `memory.zswap.*` files) with plain collections, one thread, no pins.
//!
//! It borrows two things from the crate, each checked by its own model:
//! the codecs (a page's compressed length) and the allocator. A shadow
//! [`ZsPool`] per real pool gets the same allocations and frees in the same
//! order, so its footprint is the real pool's, which is what the global
//! limit and the shrink worker act on. How the pool packs objects is
//! `store_model.rs`'s subject, not this one's.

use std::collections::BTreeMap;

mod reclaim;
mod shrinker;

use crate::{
    Compressor, Error, GroupId, GroupStats, Handle, LruPolicy, PoolConfig, ShrinkResult, ZsPool,
    ZswapStats, PAGE_SIZE,
};

/// Where a page is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// In zswap.
    Zswap,
    /// On the swap device.
    Device,
}

struct Group {
    parent: Option<usize>,
    /// Live children (online, or offline and not yet freed), oldest first.
    children: Vec<usize>,
    online: bool,
    /// Created and not freed.
    live: bool,
    /// The index's generation (bumped when its group is freed).
    gen: u32,
    /// `memory.zswap.max`; `None` is "max".
    max: Option<u64>,
    writeback: bool,
    stats: GroupStats,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Same,
    Compressed,
    Incompressible,
}

struct Entry {
    page: usize,
    /// The group charged.
    group: usize,
    len: u64,
    kind: Kind,
    /// The pool and shadow handle (not for same-filled pages).
    object: Option<(usize, Handle)>,
    referenced: bool,
}

struct Pool {
    compressor: Compressor,
    shadow: ZsPool,
    entries: usize,
    /// Not yet given back (current, or holding entries).
    live: bool,
}

/// A swapped-out page the caller is about to give its slot (see
/// [`Model::swap_out`]): a new entry, or a page for the device (with its
/// owner).
pub struct Pending {
    entry: Option<Entry>,
    page: usize,
    owner: (usize, u32),
}

/// The model.
pub struct Model {
    global_list: bool,
    max_bytes: u64,
    accept_bytes: u64,
    groups: Vec<Group>,
    /// Indexes of freed groups, oldest first.
    free_groups: std::collections::VecDeque<usize>,
    entries: BTreeMap<u32, Entry>,
    /// Slot → (page, owning group's index and generation), for pages on
    /// the device.
    device: BTreeMap<u32, (usize, (usize, u32))>,
    /// Group index → (generation, disk swap-ins not yet consumed by a
    /// shrinker count).
    disk_swapins: BTreeMap<usize, (u32, u64)>,
    /// The kernel's `shrinker_enabled`.
    shrinker_on: bool,
    /// The shrink worker spreads writeback by list length, not round-robin.
    proportional: bool,
    /// Group → the slots on its list, coldest first (under
    /// [`LruPolicy::Global`], everyone's sit on the root's).
    lists: BTreeMap<usize, Vec<u32>>,
    pools: Vec<Pool>,
    current: usize,
    reached_full: bool,
    /// The shrink worker's cursor: the group last returned, `None` at the
    /// start of a pass.
    cursor: Option<usize>,
    stats: ZswapStats,
}

impl Model {
    /// A model of a zswap with `compressor`, global limit `max_bytes`,
    /// accept threshold `accept_bytes`, lists by `policy`, and only the
    /// root group.
    pub fn new(
        compressor: Compressor,
        max_bytes: u64,
        accept_bytes: u64,
        policy: LruPolicy,
    ) -> Self {
        let mut m = Model {
            global_list: policy == LruPolicy::Global,
            max_bytes,
            accept_bytes,
            groups: vec![Group {
                parent: None,
                children: Vec::new(),
                online: true,
                live: true,
                gen: 0,
                max: None,
                writeback: true,
                stats: GroupStats::default(),
            }],
            free_groups: std::collections::VecDeque::new(),
            entries: BTreeMap::new(),
            device: BTreeMap::new(),
            disk_swapins: BTreeMap::new(),
            shrinker_on: true,
            proportional: false,
            lists: BTreeMap::new(),
            pools: Vec::new(),
            current: 0,
            reached_full: false,
            cursor: None,
            stats: ZswapStats::default(),
        };
        m.set_compressor(compressor);
        m
    }

    // --- groups -------------------------------------------------------

    fn index(&self, id: GroupId) -> Result<usize, Error> {
        match self.groups.get(id.index()) {
            Some(g) if g.live && g.gen == id.generation() => Ok(id.index()),
            _ => Err(Error::UnknownGroup(id)),
        }
    }

    /// The id of the group at index `g` now.
    fn id(&self, g: usize) -> GroupId {
        GroupId::new(g as u32, self.groups[g].gen)
    }

    /// Frees `g` if nothing refers to it any more (offline, no live child,
    /// no page charged), then its parent likewise: the index is queued for
    /// reuse under its next generation, and a cursor on it starts a new
    /// pass.
    fn try_free(&mut self, mut g: usize) {
        while let Some(parent) = self.groups[g].parent {
            let grp = &self.groups[g];
            if grp.online || !grp.live || !grp.children.is_empty() || grp.stats.zswapped != 0 {
                return;
            }
            debug_assert!(self.lists.get(&g).is_none_or(Vec::is_empty));
            let grp = &mut self.groups[g];
            grp.live = false;
            grp.gen = grp.gen.wrapping_add(1);
            self.free_groups.push_back(g);
            self.groups[parent].children.retain(|&c| c != g);
            if self.cursor == Some(g) {
                self.cursor = None;
            }
            g = parent;
        }
    }

    /// The ids of the live groups, by index.
    pub fn live_groups(&self) -> Vec<GroupId> {
        (0..self.groups.len())
            .filter(|&g| self.groups[g].live)
            .map(|g| self.id(g))
            .collect()
    }

    fn non_root(&self, id: GroupId) -> Result<usize, Error> {
        match self.index(id)? {
            0 => Err(Error::RootGroup),
            i => Ok(i),
        }
    }

    fn ancestors(&self, g: usize) -> Vec<usize> {
        std::iter::successors(Some(g), |&a| self.groups[a].parent).collect()
    }

    fn writeback_enabled(&self, g: usize) -> bool {
        self.ancestors(g).iter().all(|&a| self.groups[a].writeback)
    }

    fn may_zswap(&self, g: usize) -> bool {
        self.ancestors(g)
            .iter()
            .filter(|&&a| self.groups[a].parent.is_some())
            .all(|&a| match self.groups[a].max {
                None => true,
                Some(max) => max != 0 && self.groups[a].stats.zswap < max,
            })
    }

    fn count(&mut self, g: usize, f: impl Fn(&mut GroupStats)) {
        for a in self.ancestors(g) {
            f(&mut self.groups[a].stats);
        }
    }

    /// `Groups::create`: the oldest freed index, or a new one.
    pub fn create(&mut self, parent: GroupId) -> Result<GroupId, Error> {
        let p = self.index(parent)?;
        if !self.groups[p].online {
            return Err(Error::GroupOffline(parent));
        }
        let fresh = Group {
            parent: Some(p),
            children: Vec::new(),
            online: true,
            live: true,
            gen: 0,
            max: None,
            // A new cgroup's zswap.writeback starts as its parent's own.
            writeback: self.groups[p].writeback,
            stats: GroupStats::default(),
        };
        let id = match self.free_groups.pop_front() {
            Some(i) => {
                let gen = self.groups[i].gen;
                self.groups[i] = Group { gen, ..fresh };
                i
            }
            None => {
                self.groups.push(fresh);
                self.groups.len() - 1
            }
        };
        self.groups[p].children.push(id);
        Ok(self.id(id))
    }

    /// `Groups::offline`: the group's lists go onto the cold end of its
    /// parent's.
    pub fn offline(&mut self, id: GroupId) -> Result<(), Error> {
        let g = self.index(id)?;
        let Some(parent) = self.groups[g].parent else {
            return Err(Error::RootGroup);
        };
        if !self.groups[g].online {
            return Err(Error::GroupOffline(id));
        }
        if self.groups[g]
            .children
            .iter()
            .any(|&c| self.groups[c].online)
        {
            return Err(Error::HasOnlineChildren(id));
        }
        self.groups[g].online = false;
        let mut moved = self.lists.remove(&g).unwrap_or_default();
        let list = self.lists.entry(parent).or_default();
        moved.append(list);
        *list = moved;
        self.try_free(g);
        Ok(())
    }

    /// `Groups::set_zswap_max`.
    pub fn set_max(&mut self, id: GroupId, max: Option<u64>) -> Result<(), Error> {
        let g = self.non_root(id)?;
        self.groups[g].max = max.map(|m| m.min(u64::MAX - 1));
        Ok(())
    }

    /// `Groups::set_zswap_writeback`.
    pub fn set_writeback(&mut self, id: GroupId, enabled: bool) -> Result<(), Error> {
        let g = self.non_root(id)?;
        self.groups[g].writeback = enabled;
        Ok(())
    }

    /// `id`'s hierarchical counters.
    pub fn group_stats(&self, id: GroupId) -> Result<GroupStats, Error> {
        Ok(self.groups[self.index(id)?].stats)
    }

    // --- pools --------------------------------------------------------

    /// `Zswap::set_compressor`: a new current pool; the old one is given
    /// back at once if it holds no entry.
    pub fn set_compressor(&mut self, compressor: Compressor) {
        self.pools.push(Pool {
            compressor,
            shadow: ZsPool::new(PoolConfig::default()).expect("the default pool config is valid"),
            entries: 0,
            live: true,
        });
        let old = std::mem::replace(&mut self.current, self.pools.len() - 1);
        self.release_if_unused(old);
    }

    /// An old pool with no entry left is given back: its spans, cached
    /// ones too, go with it.
    fn release_if_unused(&mut self, pi: usize) {
        let pool = &mut self.pools[pi];
        if pool.entries == 0 && pi != self.current && pool.live {
            pool.shadow.shrink_cache();
            pool.live = false;
        }
    }

    /// Pools live now: the current one and every older one with entries.
    pub fn live_pools(&self) -> usize {
        self.pools.iter().filter(|p| p.live).count()
    }

    /// `Zswap::compact`: every shadow pool compacts as the real ones do,
    /// then gives back its cached empty spans; the bytes given back.
    pub fn compact(&mut self) -> usize {
        let mut freed = 0;
        for p in self.pools.iter().filter(|p| p.live) {
            let held = p.shadow.footprint() + p.shadow.cached_bytes();
            p.shadow.compact();
            p.shadow.shrink_cache();
            freed += held - p.shadow.footprint();
        }
        freed
    }

    fn footprint(&self) -> u64 {
        self.pools.iter().map(|p| p.shadow.footprint() as u64).sum()
    }

    /// Every counter `Zswap::stats` must report.
    pub fn stats(&self) -> ZswapStats {
        ZswapStats {
            pool_total_size: self.footprint(),
            ..self.stats
        }
    }

    // --- store, load, free ----------------------------------------------

    fn global_limit_allows(&mut self) -> bool {
        let total = self.footprint();
        if total >= self.max_bytes {
            self.stats.pool_limit_hit += 1;
            self.reached_full = true;
            return false;
        }
        if self.reached_full {
            if total > self.accept_bytes {
                return false;
            }
            self.reached_full = false;
        }
        true
    }

    /// `zswap_store` of `page` (number `page_no`) for group `g`: the entry,
    /// or `None` if rejected.
    fn store(&mut self, page_no: usize, page: &[u8], g: usize) -> Option<Entry> {
        // A group at its limit reclaims from its own list; if that wrote
        // anything back, the page is stored without a second look at the
        // limit (the kernel's `zswap_store`).
        if !self.may_zswap(g) && !matches!(self.shrink(g, true), ShrinkResult::Wrote(_)) {
            return None;
        }
        if !self.global_limit_allows() {
            return None;
        }
        // Same-filled: every 8-byte word equal (written here, not borrowed).
        let (kind, len) = if page.chunks(8).all(|w| w == &page[..8]) {
            (Kind::Same, 0)
        } else {
            let mut buf = vec![0u8; PAGE_SIZE];
            match self.pools[self.current]
                .compressor
                .compress(page, &mut buf[..PAGE_SIZE - 1])
            {
                Ok(n) => (Kind::Compressed, n),
                Err(Error::CompressPoor) if self.writeback_enabled(g) => {
                    (Kind::Incompressible, PAGE_SIZE)
                }
                Err(Error::CompressPoor) => {
                    self.stats.reject_compress_poor += 1;
                    return None;
                }
                Err(_) => {
                    self.stats.reject_compress_fail += 1;
                    return None;
                }
            }
        };
        let object = (kind != Kind::Same).then(|| {
            let pool = &mut self.pools[self.current];
            pool.entries += 1;
            let h = pool.shadow.alloc(len).expect("a page fits the pool");
            (self.current, h)
        });
        let len = len as u64;
        let incompressible = kind == Kind::Incompressible;
        self.count(g, |s| {
            s.zswap += len;
            s.zswapped += 1;
            s.zswap_incomp += u64::from(incompressible);
            s.zswpout += 1;
        });
        self.stats.stored_pages += 1;
        match kind {
            Kind::Same => self.stats.same_filled_pages += 1,
            Kind::Incompressible => self.stats.stored_incompressible_pages += 1,
            Kind::Compressed => {}
        }
        Some(Entry {
            page: page_no,
            group: g,
            len,
            kind,
            object,
            referenced: true,
        })
    }

    /// `Zswap::swap_out` of `page` (number `page_no`) for `id`: where it
    /// will be, and what to hand [`place`](Self::place) with the slot the
    /// real call returned.
    pub fn swap_out(
        &mut self,
        page_no: usize,
        page: &[u8],
        id: GroupId,
    ) -> Result<(Place, Pending), Error> {
        let g = self.index(id)?;
        if !self.groups[g].online {
            return Err(Error::GroupOffline(id));
        }
        match self.store(page_no, page, g) {
            Some(e) => Ok((
                Place::Zswap,
                Pending {
                    entry: Some(e),
                    page: page_no,
                    owner: (g, self.groups[g].gen),
                },
            )),
            None if self.writeback_enabled(g) => Ok((
                Place::Device,
                Pending {
                    entry: None,
                    page: page_no,
                    owner: (g, self.groups[g].gen),
                },
            )),
            None => Err(Error::Rejected),
        }
    }

    /// Gives a swapped-out page its slot (the store's last step: an entry
    /// goes onto the tail of its list).
    pub fn place(&mut self, slot: u32, pending: Pending) {
        assert!(
            self.place_of(slot).is_none(),
            "slot {slot} handed out twice"
        );
        match pending.entry {
            Some(e) => {
                if e.kind != Kind::Same {
                    let list = self.list_of(e.group);
                    self.lists.entry(list).or_default().push(slot);
                }
                self.entries.insert(slot, e);
            }
            None => {
                self.device.insert(slot, (pending.page, pending.owner));
            }
        }
    }

    /// Where `slot`'s page is, and which page it is.
    pub fn place_of(&self, slot: u32) -> Option<(Place, usize)> {
        match (self.entries.get(&slot), self.device.get(&slot)) {
            (Some(e), _) => Some((Place::Zswap, e.page)),
            (None, Some(&(p, _))) => Some((Place::Device, p)),
            (None, None) => None,
        }
    }

    /// Every slot in use.
    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.keys().chain(self.device.keys()).copied()
    }

    /// Releases everything an entry holds (`zswap_entry_free`).
    fn free_entry(&mut self, slot: u32, e: Entry) {
        for list in self.lists.values_mut() {
            list.retain(|&s| s != slot);
        }
        let incompressible = e.kind == Kind::Incompressible;
        for a in self.ancestors(e.group) {
            let s = &mut self.groups[a].stats;
            s.zswap = s
                .zswap
                .checked_sub(e.len)
                .expect("uncharged what was charged");
            s.zswapped -= 1;
            s.zswap_incomp -= u64::from(incompressible);
        }
        self.stats.stored_pages -= 1;
        match e.kind {
            Kind::Same => self.stats.same_filled_pages -= 1,
            Kind::Incompressible => self.stats.stored_incompressible_pages -= 1,
            Kind::Compressed => {}
        }
        if let Some((pi, h)) = e.object {
            let pool = &mut self.pools[pi];
            pool.shadow.free(h).expect("a shadow object is freed once");
            pool.entries -= 1;
            self.release_if_unused(pi);
        }
        // The entry's reference on its group: an offline group's last one
        // frees it.
        self.try_free(e.group);
    }

    /// `Zswap::swap_in` of `slot`: where the page came from, and which.
    pub fn swap_in(&mut self, slot: u32) -> Option<(Place, usize)> {
        if let Some(e) = self.entries.remove(&slot) {
            self.count(e.group, |s| s.zswpin += 1);
            let page = e.page;
            self.free_entry(slot, e);
            return Some((Place::Zswap, page));
        }
        let (page, owner) = self.device.remove(&slot)?;
        self.disk_swapin(owner);
        Some((Place::Device, page))
    }

    /// `Zswap::free` of `slot`.
    pub fn free(&mut self, slot: u32) {
        if let Some(e) = self.entries.remove(&slot) {
            self.free_entry(slot, e);
        }
        self.device.remove(&slot);
    }
}
