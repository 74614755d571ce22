//! A sequential model of [`ListLru`] and a harness that runs an operation
//! against the real lru and the model and compares them.
//!
//! The model is the kernel's semantics written as plainly as possible: a
//! `VecDeque` per (node, group index), coldest first; reparenting puts the
//! child's items in front of the parent's; an offline group is freed (it
//! holds nothing: its children are freed before it), and its index is
//! reused, oldest freed first, under the next generation, so the harness
//! also drives stale ids. After every operation the harness compares
//! results, every list's order and every count. The proptest state machine
//! (`tests/lru_model.rs`) and the `lru_ops` fuzz target drive it.

mod model;

use crate::{Del, Error, GroupId, Groups, Item, ListLru, LruStatus, NodeId, Topology};
use model::{script_action, MGroup, Model, State};

/// Items the harness juggles.
pub const ITEMS: usize = 12;
/// Groups live at once in the harness at most (root included).
pub const MAX_GROUPS: usize = 7;
/// Nodes of the harness's lru.
pub const NODES: u32 = 2;

/// What a walk callback does at one visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer `Skip`.
    Skip,
    /// Answer `Rotate`.
    Rotate,
    /// Isolate, answer `Removed`.
    Remove,
    /// Isolate, drop the lock, answer `RemovedRetry`.
    RemoveRetry,
    /// Drop the lock, answer `Retry`.
    Retry,
    /// Answer `Retry` with the lock held.
    RetryLocked,
    /// Answer `Stop`.
    Stop,
}

/// One operation; indices are taken modulo what exists (plus one, so that
/// unknown nodes and groups are exercised too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LruOp {
    /// `add(item, node, group)`.
    Add { item: u8, node: u8, group: u8 },
    /// `del(item)`.
    Del { item: u8 },
    /// `isolate(item)`.
    Isolate { item: u8 },
    /// `putback(item, node, group)`.
    Putback { item: u8, node: u8, group: u8 },
    /// `rotate(item)`.
    Rotate { item: u8 },
    /// `walk_one(node, group, budget)` with the callback following `script`.
    Walk {
        node: u8,
        group: u8,
        budget: u8,
        script: Vec<Action>,
    },
    /// `walk_node(node, budget)` with `script`.
    WalkNode {
        node: u8,
        budget: u8,
        script: Vec<Action>,
    },
    /// `Groups::create(parent)`.
    Create { parent: u8 },
    /// `Groups::offline(group)`.
    Offline { group: u8 },
}

/// The real lru and the model, side by side.
pub struct LruHarness {
    groups: Groups,
    lru: ListLru<usize>,
    items: Vec<Item<usize>>,
    model: Model,
}

impl Default for LruHarness {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs the real callback side of a walk script.
fn real_callback<'s>(
    script: &'s [Action],
    calls: &'s mut usize,
    visits: &'s mut Vec<usize>,
) -> impl FnMut(&mut crate::WalkGuard<'_, usize>) -> LruStatus + 's {
    move |g| {
        visits.push(*g.item());
        match script_action(script, calls) {
            Action::Skip => LruStatus::Skip,
            Action::Rotate => LruStatus::Rotate,
            Action::Remove => {
                g.isolate().expect("a walked item is on the list");
                LruStatus::Removed
            }
            Action::RemoveRetry => {
                g.isolate().expect("a walked item is on the list");
                g.unlocked(|| ());
                LruStatus::RemovedRetry
            }
            Action::Retry => {
                g.unlocked(|| ());
                LruStatus::Retry
            }
            Action::RetryLocked => LruStatus::Retry,
            Action::Stop => LruStatus::Stop,
        }
    }
}

impl LruHarness {
    /// A fresh harness: root only, two nodes, [`ITEMS`] detached items.
    pub fn new() -> Self {
        let groups = Groups::new();
        let lru = ListLru::with_groups(&Topology::with_nodes(NODES), &groups);
        LruHarness {
            groups,
            lru,
            items: (0..ITEMS).map(Item::new).collect(),
            model: Model {
                groups: vec![MGroup {
                    parent: 0,
                    online: true,
                    live: true,
                    gen: 0,
                }],
                state: vec![State::Detached; ITEMS],
                ..Model::default()
            },
        }
    }

    fn node(&self, raw: u8) -> u32 {
        u32::from(raw) % (NODES + 1)
    }

    /// The id `raw` picks: a live group's, a freed group's last (stale)
    /// id, or one past the last index (never handed out).
    fn group(&self, raw: u8) -> GroupId {
        let i = usize::from(raw) % (self.model.groups.len() + 1);
        match self.model.groups.get(i) {
            Some(g) if g.live => GroupId::new(i as u32, g.gen),
            Some(g) => GroupId::new(i as u32, g.gen.wrapping_sub(1)),
            None => GroupId::new(i as u32, 0),
        }
    }

    /// Applies `op` to both and compares everything; `Err` describes the
    /// first difference.
    pub fn apply(&mut self, op: &LruOp) -> Result<(), String> {
        let r = self.step(op);
        r.and_then(|()| self.compare())
            .map_err(|e| format!("after {op:?}: {e}"))
    }

    fn step(&mut self, op: &LruOp) -> Result<(), String> {
        let m = &mut self.model;
        match *op {
            LruOp::Add { item, node, group } | LruOp::Putback { item, node, group } => {
                let i = usize::from(item) % ITEMS;
                let (n, gid) = (self.node(node), self.group(group));
                let putback = matches!(op, LruOp::Putback { .. });
                let real = if putback {
                    self.lru.putback(&self.items[i], NodeId(n), gid)
                } else {
                    self.lru.add(&self.items[i], NodeId(n), gid)
                };
                let m = &mut self.model;
                let want = m.check(n, gid).map(|g| {
                    let from = if putback {
                        State::Isolated
                    } else {
                        State::Detached
                    };
                    if m.state[i] != from {
                        return false;
                    }
                    let target = m.nearest_online(g);
                    m.list(n, target).push_back(i);
                    m.state[i] = State::Linked;
                    true
                });
                same(real, want)
            }
            LruOp::Del { item } | LruOp::Isolate { item } => {
                let i = usize::from(item) % ITEMS;
                let isolate = matches!(op, LruOp::Isolate { .. });
                let want = match m.state[i] {
                    State::Detached => Del::NotOnList,
                    State::Isolated => Del::Isolated,
                    State::Linked => {
                        let (key, pos) = m.find(i).ok_or("linked item on no list")?;
                        m.lists.get_mut(&key).unwrap().remove(pos);
                        m.state[i] = if isolate {
                            State::Isolated
                        } else {
                            State::Detached
                        };
                        Del::Removed
                    }
                };
                if isolate {
                    same(self.lru.isolate(&self.items[i]), Ok(want == Del::Removed))
                } else {
                    same(self.lru.del(&self.items[i]), Ok(want))
                }
            }
            LruOp::Rotate { item } => {
                let i = usize::from(item) % ITEMS;
                let want = match m.find(i) {
                    Some((key, pos)) => {
                        let l = m.lists.get_mut(&key).unwrap();
                        l.remove(pos);
                        l.push_back(i);
                        true
                    }
                    None => false,
                };
                same(self.lru.rotate(&self.items[i]), Ok(want))
            }
            LruOp::Walk {
                node,
                group,
                budget,
                ref script,
            } => {
                let (n, gid) = (self.node(node), self.group(group));
                let (mut real_budget, mut model_budget) = (budget as usize, budget as usize);
                let (mut rc, mut mc) = (0, 0);
                let (mut rv, mut mv) = (Vec::new(), Vec::new());
                let real = self.lru.walk_one(
                    NodeId(n),
                    gid,
                    &mut real_budget,
                    real_callback(script, &mut rc, &mut rv),
                );
                let m = &mut self.model;
                let want = m
                    .check(n, gid)
                    .map(|g| m.walk((n, g), &mut model_budget, script, &mut mc, &mut mv));
                same(real, want)?;
                same_val("visits", &rv, &mv)?;
                same_val("budget left", &real_budget, &model_budget)
            }
            LruOp::WalkNode {
                node,
                budget,
                ref script,
            } => {
                let n = self.node(node);
                let (mut real_budget, mut model_budget) = (budget as usize, budget as usize);
                let (mut rc, mut mc) = (0, 0);
                let (mut rv, mut mv) = (Vec::new(), Vec::new());
                let real = self.lru.walk_node(
                    NodeId(n),
                    &mut real_budget,
                    real_callback(script, &mut rc, &mut rv),
                );
                let m = &mut self.model;
                let want = m.check(n, GroupId::ROOT).map(|_| {
                    let mut isolated = 0;
                    for g in 0..m.groups.len() {
                        if model_budget == 0 {
                            break;
                        }
                        isolated += m.walk((n, g), &mut model_budget, script, &mut mc, &mut mv);
                    }
                    isolated
                });
                same(real, want)?;
                same_val("visits", &rv, &mv)?;
                same_val("budget left", &real_budget, &model_budget)
            }
            LruOp::Create { parent } => {
                if m.live() >= MAX_GROUPS {
                    return Ok(());
                }
                let pid = self.group(parent);
                let real = self.groups.create(pid);
                let m = &mut self.model;
                let want = m.index(pid).and_then(|p| {
                    if !m.groups[p].online {
                        return Err(Error::GroupOffline(pid));
                    }
                    let fresh = MGroup {
                        parent: p,
                        online: true,
                        live: true,
                        gen: 0,
                    };
                    let i = match m.free.pop_front() {
                        Some(i) => {
                            m.groups[i] = MGroup {
                                gen: m.groups[i].gen,
                                ..fresh
                            };
                            i
                        }
                        None => {
                            m.groups.push(fresh);
                            m.groups.len() - 1
                        }
                    };
                    Ok(GroupId::new(i as u32, m.groups[i].gen))
                });
                same(real, want)
            }
            LruOp::Offline { group } => {
                let gid = self.group(group);
                let real = self.groups.offline(gid);
                let m = &mut self.model;
                let want = m.index(gid).and_then(|g| {
                    if g == 0 {
                        return Err(Error::RootGroup);
                    }
                    if !m.groups[g].online {
                        return Err(Error::GroupOffline(gid));
                    }
                    if m.groups.iter().any(|c| c.live && c.online && c.parent == g) {
                        return Err(Error::HasOnlineChildren(gid));
                    }
                    let parent = m.groups[g].parent;
                    for n in 0..NODES {
                        let mut child = m.lists.remove(&(n, g)).unwrap_or_default();
                        let dst = m.list(n, parent);
                        child.extend(dst.drain(..));
                        *dst = child;
                    }
                    // Nothing refers to it (its children were freed at their
                    // own offline): freed, its index queued for reuse.
                    let mg = &mut m.groups[g];
                    mg.online = false;
                    mg.live = false;
                    mg.gen = mg.gen.wrapping_add(1);
                    m.free.push_back(g);
                    Ok(())
                });
                same(real, want)
            }
        }
    }

    /// Compares every list's order and every count.
    fn compare(&mut self) -> Result<(), String> {
        let mut total = 0;
        for n in 0..NODES {
            let mut node_total = 0;
            for g in 0..self.model.groups.len() {
                let mg = self.model.groups[g];
                if !mg.live {
                    // Freed: nothing on its lists, and its last id refused.
                    let stale = GroupId::new(g as u32, mg.gen.wrapping_sub(1));
                    same_val(
                        &format!("count_one of freed {stale}"),
                        &self.lru.count_one(NodeId(n), stale),
                        &Err(Error::UnknownGroup(stale)),
                    )?;
                    same_val(
                        &format!("model list of freed {g}"),
                        &self.model.list(n, g).len(),
                        &0,
                    )?;
                    continue;
                }
                let gid = GroupId::new(g as u32, mg.gen);
                let want: Vec<usize> = self.model.list(n, g).iter().copied().collect();
                let mut got = Vec::new();
                let mut budget = usize::MAX;
                self.lru
                    .walk_one(NodeId(n), gid, &mut budget, |w| {
                        got.push(*w.item());
                        LruStatus::Skip
                    })
                    .map_err(|e| e.to_string())?;
                same_val(&format!("list ({n}, {g})"), &got, &want)?;
                let count = self
                    .lru
                    .count_one(NodeId(n), gid)
                    .map_err(|e| e.to_string())?;
                same_val(&format!("count_one({n}, {g})"), &count, &want.len())?;
                node_total += want.len();
            }
            let count = self.lru.count_node(NodeId(n)).map_err(|e| e.to_string())?;
            same_val(&format!("count_node({n})"), &count, &node_total)?;
            total += node_total;
        }
        same_val("count", &self.lru.count(), &total)?;
        for (i, item) in self.items.iter().enumerate() {
            let st = self.model.state[i];
            same_val(
                &format!("item {i} linked"),
                &item.is_linked(),
                &(st == State::Linked),
            )?;
            same_val(
                &format!("item {i} isolated"),
                &item.is_isolated(),
                &(st == State::Isolated),
            )?;
        }
        Ok(())
    }
}

/// Decodes fuzzer bytes into operations: a tag byte picks the operation,
/// the bytes after it fill its fields (missing bytes read as 0). Walk
/// scripts take a length byte (mod 6) and one byte per action.
pub fn decode_ops(data: &[u8]) -> Vec<LruOp> {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let mut ops = Vec::new();
    while let Some(tag) = next() {
        let mut b = || next().unwrap_or(0);
        let op = match tag % 9 {
            0 => LruOp::Add {
                item: b(),
                node: b(),
                group: b(),
            },
            1 => LruOp::Del { item: b() },
            2 => LruOp::Isolate { item: b() },
            3 => LruOp::Putback {
                item: b(),
                node: b(),
                group: b(),
            },
            4 => LruOp::Rotate { item: b() },
            5 | 6 => {
                let (node, group, budget) = (b(), b(), b() % 32);
                let script = (0..b() % 6).map(|_| action(b())).collect();
                if tag % 9 == 5 {
                    LruOp::Walk {
                        node,
                        group,
                        budget,
                        script,
                    }
                } else {
                    LruOp::WalkNode {
                        node,
                        budget,
                        script,
                    }
                }
            }
            7 => LruOp::Create { parent: b() },
            _ => LruOp::Offline { group: b() },
        };
        ops.push(op);
    }
    ops
}

fn action(byte: u8) -> Action {
    match byte % 7 {
        0 => Action::Skip,
        1 => Action::Rotate,
        2 => Action::Remove,
        3 => Action::RemoveRetry,
        4 => Action::Retry,
        5 => Action::RetryLocked,
        _ => Action::Stop,
    }
}

/// The fuzz target's body: decode, run against the model, panic on the
/// first difference. At most 512 operations, so one input stays fast.
pub fn run_bytes(data: &[u8]) {
    let mut h = LruHarness::new();
    for op in decode_ops(data).iter().take(512) {
        if let Err(e) = h.apply(op) {
            panic!("ListLru diverged from the model: {e}");
        }
    }
}

fn same<T: PartialEq + std::fmt::Debug>(
    real: Result<T, Error>,
    want: Result<T, Error>,
) -> Result<(), String> {
    same_val("result", &real, &want)
}

fn same_val<T: PartialEq + std::fmt::Debug + ?Sized>(
    what: &str,
    real: &T,
    want: &T,
) -> Result<(), String> {
    if real == want {
        Ok(())
    } else {
        Err(format!("{what}: real {real:?}, model {want:?}"))
    }
}
