//! The sequential model the lru harness compares the real [`ListLru`]
//! against: a `VecDeque` per (node, group index), coldest first, and the
//! groups' tree as plainly as it can be written (see the module above).
//!
//! [`ListLru`]: crate::ListLru

use std::collections::{HashMap, VecDeque};

use super::{Action, NODES};
use crate::{Error, GroupId, NodeId};

/// Where the model's item is, as the real item's state word says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    Detached,
    Linked,
    Isolated,
}

/// One group index of the model.
#[derive(Clone, Copy, Debug)]
pub(super) struct MGroup {
    /// The parent's index; the root's is itself.
    pub(super) parent: usize,
    pub(super) online: bool,
    /// Created and not freed.
    pub(super) live: bool,
    /// The index's generation now (bumped when its group is freed).
    pub(super) gen: u32,
}

/// The sequential model.
#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) groups: Vec<MGroup>,
    /// Indexes of freed groups, oldest first.
    pub(super) free: VecDeque<usize>,
    pub(super) lists: HashMap<(u32, usize), VecDeque<usize>>,
    pub(super) state: Vec<State>,
}

impl Model {
    pub(super) fn nearest_online(&self, mut g: usize) -> usize {
        while !self.groups[g].online && g != 0 {
            g = self.groups[g].parent;
        }
        g
    }

    /// The index of live group `id`.
    pub(super) fn index(&self, id: GroupId) -> Result<usize, Error> {
        match self.groups.get(id.index()) {
            Some(g) if g.live && g.gen == id.generation() => Ok(id.index()),
            _ => Err(Error::UnknownGroup(id)),
        }
    }

    pub(super) fn live(&self) -> usize {
        self.groups.iter().filter(|g| g.live).count()
    }

    pub(super) fn list(&mut self, node: u32, g: usize) -> &mut VecDeque<usize> {
        self.lists.entry((node, g)).or_default()
    }

    pub(super) fn find(&self, item: usize) -> Option<((u32, usize), usize)> {
        self.lists
            .iter()
            .find_map(|(k, l)| l.iter().position(|&i| i == item).map(|p| (*k, p)))
    }

    /// The index of `id` if `node` and `id` are valid.
    pub(super) fn check(&self, node: u32, id: GroupId) -> Result<usize, Error> {
        if node >= NODES {
            return Err(Error::NodeOutOfRange {
                node: NodeId(node),
                nr_nodes: NODES as usize,
            });
        }
        self.index(id)
    }

    /// Walks one list; returns (isolated, visits).
    pub(super) fn walk(
        &mut self,
        key: (u32, usize),
        budget: &mut usize,
        script: &[Action],
        calls: &mut usize,
        visits: &mut Vec<usize>,
    ) -> usize {
        let mut isolated = 0;
        let mut list = self.lists.remove(&key).unwrap_or_default();
        'restart: loop {
            let mut idx = 0;
            while idx < list.len() {
                if *budget == 0 {
                    break 'restart;
                }
                *budget -= 1;
                let item = list[idx];
                let has_next = idx + 1 < list.len();
                visits.push(item);
                let action = script_action(script, calls);
                match action {
                    Action::Skip => idx += 1,
                    Action::Rotate => {
                        list.remove(idx);
                        list.push_back(item);
                        if !has_next {
                            break;
                        }
                    }
                    Action::Remove | Action::RemoveRetry => {
                        list.remove(idx);
                        self.state[item] = State::Isolated;
                        isolated += 1;
                        if action == Action::RemoveRetry {
                            continue 'restart;
                        }
                    }
                    Action::Retry | Action::RetryLocked => continue 'restart,
                    Action::Stop => break 'restart,
                }
            }
            break;
        }
        self.lists.insert(key, list);
        isolated
    }
}

pub(super) fn script_action(script: &[Action], calls: &mut usize) -> Action {
    let a = if script.is_empty() {
        Action::Skip
    } else {
        script[*calls % script.len()]
    };
    *calls += 1;
    a
}
